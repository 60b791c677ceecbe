import t from 'tap';
import { createStageTimer, STAGES, timeWith, timingFields } from '../src/timing.js';

t.test('timeWith times a synchronous step, and one that throws', async (t) => {
  const times: number[] = [];
  t.equal(
    timeWith(
      (ms) => times.push(ms),
      () => 42,
    ),
    42,
  );
  t.throws(
    () =>
      timeWith(
        (ms) => times.push(ms),
        () => {
          throw new Error('boom');
        },
      ),
    { message: 'boom' },
  );
  t.equal(times.length, 2);
  t.ok(times.every((ms) => ms >= 0));
});

t.test('timeWith times an asynchronous step once it settles, resolved or rejected', async (t) => {
  const times: number[] = [];
  const slow = timeWith(
    (ms) => times.push(ms),
    () => new Promise<string>((resolve) => setTimeout(() => resolve('done'), 20)),
  );
  t.same(times, [], 'not before it settles');
  t.equal(await slow, 'done');
  t.ok(times[0]! >= 15, `${times[0]} ms`);
  await t.rejects(
    timeWith(
      (ms) => times.push(ms),
      async () => {
        throw new Error('late');
      },
    ),
    { message: 'late' },
  );
  t.equal(times.length, 2);
});

t.test('a stage timer keeps the stages in the order they ran', async (t) => {
  const timer = createStageTimer();
  timer.timed('validation', () => undefined);
  await timer.timed('prefetch', async () => undefined);
  t.same(
    timer.timings.map((s) => s.stage),
    ['validation', 'prefetch'],
  );
  t.ok(timer.elapsedMs() >= timer.timings.reduce((sum, s) => sum + s.ms, 0));
  t.same(timingFields([{ stage: 'rules', ms: 1.5 }]), { rulesMs: 1.5 });
  t.same(STAGES, [
    'validation',
    'prefetch',
    'rules',
    'models',
    'explanation',
    'cards',
    'publish',
    'inputs',
    'audit',
  ]);
});
