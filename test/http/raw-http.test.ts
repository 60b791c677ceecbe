/**
 * Issue 16 §9: every error body is an OperationOutcome, those written by Node's HTTP parser and by
 * Fastify's router included. Each malformed request is sent raw, over a socket to a real loopback
 * listener (app.inject() cannot send them), and every answer on the connection is parsed.
 */
import { connect } from 'node:net';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { ErrorCode } from '../../src/errors.js';
import { assertConforms, buildTestApp } from '../helpers/app.js';

const harness = await buildTestApp();
const { app } = harness;
await app.listen({ host: '127.0.0.1', port: 0 });
t.teardown(() => app.close());
const { port } = app.server.address() as AddressInfo;

interface RawAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Sends bytes as they are and collects everything until the server closes (or 3 s pass). */
function sendRaw(bytes: string): Promise<RawAnswer[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(parseAnswers(Buffer.concat(chunks).toString('latin1')));
    });
    socket.write(bytes, 'latin1');
  });
}

/** Splits what came back into answers, by their Content-Length. */
function parseAnswers(text: string): RawAnswer[] {
  const answers: RawAnswer[] = [];
  let rest = text;
  while (rest.startsWith('HTTP/1.1 ')) {
    const end = rest.indexOf('\r\n\r\n');
    const [statusLine, ...lines] = rest.slice(0, end).split('\r\n');
    const headers = Object.fromEntries(
      lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]),
    );
    const length = Number(headers['content-length']);
    const body = Buffer.from(rest.slice(end + 4), 'latin1')
      .subarray(0, length)
      .toString('utf8');
    answers.push({ status: Number(statusLine!.split(' ')[1]), headers, body });
    rest = rest.slice(end + 4 + Buffer.byteLength(body));
  }
  return answers;
}

function expectOutcome(t: Test, answer: RawAnswer | undefined, status: number, code: ErrorCode): void {
  t.ok(answer, 'an answer');
  if (!answer) return;
  t.equal(answer.status, status, 'status');
  t.match(answer.headers['content-type'], /^application\/fhir\+json/, 'content type');
  const body = JSON.parse(answer.body);
  assertConforms('OperationOutcome', body);
  t.equal(body.issue[0].details.coding[0].code, code, 'catalogue code');
}

const valid = JSON.stringify({
  hook: 'patient-view',
  hookInstance: 'raw-1',
  context: { userId: 'Practitioner/p', patientId: 'p1' },
  prefetch: { lesions: { resourceType: 'Bundle', type: 'searchset', entry: [] } },
});
const head = (path: string, extra: string) =>
  `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n${extra}\r\n`;
const URL = '/cds-services/melanoma-lesion-triage';

t.test('a Content-Length shorter than the body: the rest is a malformed request', async (t) => {
  // The parser reads the rest of the packet as the next request and refuses it, possibly before the
  // first request is answered: every answer on the connection is an OperationOutcome, the last a 400.
  const answers = await sendRaw(`${head(URL, 'Content-Length: 10\r\n')}${valid}`);
  t.ok(answers.length >= 1 && answers.length <= 2, 'one or two answers');
  for (const answer of answers.slice(0, -1)) {
    expectOutcome(t, answer, 400, 'CDS_ERR_REQUEST_MALFORMED_JSON');
  }
  expectOutcome(t, answers.at(-1), 400, 'CDS_ERR_HTTP_MALFORMED');
  t.equal(answers.at(-1)!.headers.connection, 'close');
});

t.test('Content-Length with Transfer-Encoding: chunked', async (t) => {
  const chunked = `${valid.length.toString(16)}\r\n${valid}\r\n0\r\n\r\n`;
  const answers = await sendRaw(
    `${head(URL, `Content-Length: ${valid.length}\r\nTransfer-Encoding: chunked\r\n`)}${chunked}`,
  );
  t.equal(answers.length, 1);
  expectOutcome(t, answers[0], 400, 'CDS_ERR_HTTP_MALFORMED');
  t.match(
    JSON.parse(answers[0]!.body).issue[0].diagnostics,
    /^The HTTP request is malformed \(HPE_[A-Z_]+\)/,
  );
});

t.test('two Content-Length headers', async (t) => {
  for (const second of [valid.length, valid.length + 5]) {
    const answers = await sendRaw(
      `${head(URL, `Content-Length: ${valid.length}\r\nContent-Length: ${second}\r\n`)}${valid}`,
    );
    t.equal(answers.length, 1);
    expectOutcome(t, answers[0], 400, 'CDS_ERR_HTTP_MALFORMED');
  }
});

t.test('headers too large: 431', async (t) => {
  const answers = await sendRaw(
    `GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  );
  t.equal(answers.length, 1);
  expectOutcome(t, answers[0], 431, 'CDS_ERR_HEADERS_TOO_LARGE');
  t.equal(
    JSON.parse(answers[0]!.body).issue[0].diagnostics,
    'The request line and headers are larger than 16384 bytes; the connection is closed',
  );
});

t.test('a URL too long: 414', async (t) => {
  const answers = await sendRaw(
    `POST /cds-services/${'a'.repeat(500)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
  );
  t.equal(answers.length, 1);
  expectOutcome(t, answers[0], 414, 'CDS_ERR_URL_TOO_LONG');
  t.equal(answers[0]!.headers['x-content-type-options'], 'nosniff', 'the edge headers are there too');
});

t.test('an undecodable URL: 400', async (t) => {
  const answers = await sendRaw(
    `GET /cds-services/%E0%A4%A HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
  );
  t.equal(answers.length, 1);
  expectOutcome(t, answers[0], 400, 'CDS_ERR_CLIENT_ERROR');
});

t.test('not HTTP at all', async (t) => {
  const answers = await sendRaw('HELLO\r\n\r\n');
  t.equal(answers.length, 1);
  expectOutcome(t, answers[0], 400, 'CDS_ERR_HTTP_MALFORMED');
});

t.test('a valid request on the same listener is still answered', async (t) => {
  const answers = await sendRaw(
    `${head(URL, `Content-Length: ${valid.length}\r\nConnection: close\r\n`)}${valid}`,
  );
  t.equal(answers.length, 1);
  t.equal(answers[0]!.status, 200);
  t.same(JSON.parse(answers[0]!.body), { cards: [] });
  const errors = harness.logs().filter((l) => (l.level as number) >= 50);
  t.same(errors, [], 'no error log line');
});
