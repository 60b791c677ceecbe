import type { FastifyBaseLogger } from 'fastify';
import { pino } from 'pino';
import t from 'tap';
import { deferredChildLogger } from '../../src/http/child-logger.js';
import { loggerOptions } from '../../src/logger.js';

t.test(
  'a deferred child logger writes the lines an eager pino child writes, and is made only to write',
  async (t) => {
    const capture = () => {
      const lines: string[] = [];
      return { lines, stream: { write: (line: string) => void lines.push(line) } };
    };
    // Two roots, the same settings as the service's, without timestamps so that lines compare exactly.
    const root = (stream: { write(line: string): void }) =>
      pino({ ...loggerOptions({ logLevel: 'info' }), timestamp: false }, stream);
    const eager = capture();
    const deferred = capture();
    const run = (
      child: (parent: FastifyBaseLogger, bindings: Record<string, unknown>) => FastifyBaseLogger,
      log: FastifyBaseLogger,
    ) => {
      const request = child(log, { reqId: 'req-1' });
      request.debug({ a: 1 }, 'not written');
      const client = request.child({ iss: 'https://ehr.example.org', tenant: null, jti: 'j-1' });
      const call = client.child({ serviceId: 'svc', hookInstance: 'h-1' });
      call.info({ cards: 2, prefetch: { secret: 1 } }, 'hook answered');
      request.warn({ code: 'X' }, 'request refused %s', 'now');
      client.error(new Error('boom'));
      call.trace('not written either');
      t.equal(call.level, 'info');
      const quieter = request.child({ x: 1 }, { level: 'error' });
      quieter.warn('dropped');
      quieter.error('kept');
    };
    run((parent, bindings) => parent.child(bindings), root(eager.stream));
    run((parent, bindings) => deferredChildLogger(parent, bindings, {}), root(deferred.stream));
    t.equal(eager.lines.length, 4);
    // Error stacks name the line of each run: compare without them.
    const unstacked = (lines: string[]) => lines.map((l) => l.replace(/"stack":"[^"]*"/, '"stack":""'));
    t.same(unstacked(deferred.lines), unstacked(eager.lines));
    t.match(
      deferred.lines[0],
      /"reqId":"req-1","iss":"https:\/\/ehr.example.org","tenant":null,"jti":"j-1","serviceId":"svc","hookInstance":"h-1"/,
    );

    // At warn, a request that logs nothing never reads its bindings (no pino child is made).
    let read = 0;
    const bindings = {
      get reqId() {
        read += 1;
        return 'req-2';
      },
    };
    const quiet = deferredChildLogger(root(capture().stream), bindings, {});
    quiet.level = 'warn';
    t.equal(read, 1, 'setting a level makes the child');
    const atWarn = root(capture().stream);
    atWarn.level = 'warn';
    const lazy = deferredChildLogger(atWarn, bindings, {});
    lazy.info('no');
    lazy.child({ more: 1 }).debug('no');
    t.equal(read, 1, 'nothing written, nothing made');
    t.equal(lazy.level, 'warn');

    // Like a pino child, a deferred one keeps the level its parent had when it was made.
    const lines = capture();
    const parent = root(lines.stream);
    const early = deferredChildLogger(parent, { reqId: 'r' }, {});
    parent.level = 'error';
    early.info('written at the level of its time');
    t.equal(lines.lines.length, 1);
  },
);
