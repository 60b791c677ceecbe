/**
 * The benchmark's baseline: a bare Fastify server that parses the same JSON hook requests (same body
 * limit) and answers every POST with a fixed JSON body of `BENCH_RESPONSE_BYTES` bytes, the mean size of
 * the real service's answers. Started as a child process by run.ts; prints its port on stdout.
 * Arguments: <responseBytes>.
 */
import Fastify from 'fastify';

const bytes = Number(process.argv[2] ?? 0);
// A JSON object of exactly `bytes` bytes (at least `{"cards":[],"p":""}`).
const head = '{"cards":[],"p":"';
const fixed = head + 'x'.repeat(Math.max(0, bytes - head.length - 2)) + '"}';

const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
app.post('/cds-services/:id', async (request, reply) => {
  // Touch the parsed body so the parse cannot be skipped.
  if (typeof (request.body as { hook?: unknown }).hook !== 'string') return reply.code(400).send({});
  return reply.header('content-type', 'application/json; charset=utf-8').send(fixed);
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
process.stdout.write(`${typeof address === 'object' && address ? address.port : 0}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));
