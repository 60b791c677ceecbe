import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Bundle, Patient } from 'fhir/r4.js';
import t from 'tap';
import {
  type CliIo,
  fileNameFor,
  MAX_COUNT,
  parseCliArgs,
  parseNow,
  run,
  USAGE,
  UsageError,
} from '../../../tools/synthetic/generate.js';
import { generateCohort } from '../../../tools/synthetic/patients.js';

const TODAY = new Date('2026-03-04T15:30:00Z');
const BASE = ['--seed', '42', '--count', '50', '--out', 'out'];

function io(progressIsTty = false): CliIo & { out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    stdout: (text) => out.push(text),
    stderr: (text) => err.push(text),
    progressIsTty,
    today: TODAY,
  };
}

t.test('parseCliArgs returns validated arguments', async (t) => {
  t.same(parseCliArgs([...BASE, '--now', '2026-01-01'], TODAY), {
    kind: 'run',
    args: { seed: 42, count: 50, out: 'out', now: new Date('2026-01-01T00:00:00Z'), objectionRate: 0 },
  });
  const defaults = parseCliArgs(BASE, TODAY);
  t.equal(
    defaults.kind === 'run' && defaults.args.now.toISOString(),
    '2026-03-04T00:00:00.000Z',
    'default now: today, UTC midnight',
  );
  const full = parseCliArgs(
    [
      '--seed=-7',
      '--count',
      '1',
      '--out',
      'x',
      '--now',
      '2026-01-01T09:00:00+02:00',
      '--objection-rate',
      '0.25',
    ],
    TODAY,
  );
  t.same(full, {
    kind: 'run',
    args: { seed: -7, count: 1, out: 'x', now: new Date('2026-01-01T07:00:00Z'), objectionRate: 0.25 },
  });
  t.equal(
    parseCliArgs(['--seed', '-3', '--count', String(MAX_COUNT), '--out', 'x'], TODAY).kind,
    'run',
    'a negative seed may follow --seed as its own argument',
  );
  t.same(parseCliArgs(['--help'], TODAY), { kind: 'help' });
  t.same(parseCliArgs(['-h', '--seed', 'bad'], TODAY), { kind: 'help' }, 'help wins over invalid values');
});

t.test('parseCliArgs rejects bad input with an exact message', async (t) => {
  const cases: [string[], string][] = [
    [[], '--seed is required'],
    [['--count', '5', '--out', 'x'], '--seed is required'],
    [['--seed', 'x', '--count', '5', '--out', 'x'], '--seed must be an integer (got "x")'],
    [['--seed', '1.5', '--count', '5', '--out', 'x'], '--seed must be an integer (got "1.5")'],
    [
      ['--seed', '99999999999999999999', '--count', '5', '--out', 'x'],
      '--seed must be an integer (got "99999999999999999999")',
    ],
    [['--seed', '1', '--out', 'x'], '--count is required'],
    [['--seed', '1', '--count', '0', '--out', 'x'], '--count must be an integer from 1 to 100000 (got "0")'],
    [
      ['--seed', '1', '--count', '100001', '--out', 'x'],
      '--count must be an integer from 1 to 100000 (got "100001")',
    ],
    [
      ['--seed', '1', '--count', '5x', '--out', 'x'],
      '--count must be an integer from 1 to 100000 (got "5x")',
    ],
    [
      ['--seed', '1', '--count', '-5', '--out', 'x'],
      '--count must be an integer from 1 to 100000 (got "-5")',
    ],
    [['--seed', '1', '--count', '5'], '--out is required'],
    [['--seed', '1', '--count', '5', '--out', ' '], '--out must not be empty'],
    [
      [...BASE, '--now', '2026-02-30'],
      '--now must be a date (YYYY-MM-DD) or a date-time with a time zone (e.g. 2026-01-01T09:00:00Z) (got "2026-02-30")',
    ],
    [
      [...BASE, '--now', '2026-01-01T09:00:00'],
      '--now must be a date (YYYY-MM-DD) or a date-time with a time zone (e.g. 2026-01-01T09:00:00Z) (got "2026-01-01T09:00:00")',
    ],
    [[...BASE, '--objection-rate', '1.5'], '--objection-rate must be a number from 0 to 1 (got "1.5")'],
    [[...BASE, '--objection-rate', 'abc'], '--objection-rate must be a number from 0 to 1 (got "abc")'],
    [[...BASE, '--objection-rate='], '--objection-rate must be a number from 0 to 1 (got "")'],
    [[...BASE, '--foo'], 'unknown option --foo'],
    [[...BASE, '-x'], 'unknown option -x'],
    [[...BASE, 'extra'], 'unexpected argument "extra"'],
    [[...BASE, '--', '--seed'], 'unexpected argument "--seed"'],
    [['--count', '5', '--out', 'x', '--seed'], '--seed needs a value'],
    [[...BASE, '--help=yes'], '--help takes no value'],
  ];
  for (const [argv, message] of cases) {
    t.throws(() => parseCliArgs(argv, TODAY), new UsageError(message), argv.join(' '));
  }
  t.throws(
    () => parseCliArgs(BASE, new Date(Number.NaN)),
    new UsageError('the current date is not valid; pass --now'),
  );
  t.equal(new UsageError('x').name, 'UsageError');
});

t.test('parseNow accepts dates and zoned date-times only', async (t) => {
  t.equal(parseNow('2024-02-29')?.toISOString(), '2024-02-29T00:00:00.000Z');
  t.equal(parseNow('2026-01-01T09:15Z')?.toISOString(), '2026-01-01T09:15:00.000Z');
  t.equal(parseNow('2026-01-01T09:15:30.5-05:00')?.toISOString(), '2026-01-01T14:15:30.500Z');
  for (const bad of ['2025-02-29', '2026-1-1', '2026-01-01T24:00Z', '2026-02-30T00:00:00Z', 'tomorrow', '']) {
    t.equal(parseNow(bad), undefined, bad);
  }
});

t.test('fileNameFor names files <Given>_<Family>_<id>.json', async (t) => {
  const bundle = generateCohort({ seed: 1, count: 1, now: TODAY })[0]!;
  const patient = bundle.entry![0]!.resource as Patient;
  t.equal(
    fileNameFor(bundle),
    `${patient.name![0]!.given![0]}_${patient.name![0]!.family}_${patient.id}.json`,
  );
  const odd: Bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      {
        resource: {
          resourceType: 'Patient',
          id: 'p-1',
          name: [{ given: ['Zoë Ann'], family: "O'Keefe/../x" }],
        } as never,
      },
    ],
  };
  t.equal(fileNameFor(odd), 'ZoeAnn_OKeefex_p-1.json', 'names are reduced to safe characters');
  const anonymous: Bundle = {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [{ resource: { resourceType: 'Patient', id: 'p-2' } }],
  };
  t.equal(fileNameFor(anonymous), 'Unknown_Unknown_p-2.json');
  t.throws(
    () => fileNameFor({ resourceType: 'Bundle', type: 'transaction' }),
    new Error('bundle has no Patient with an id'),
  );
});

t.test('run writes one bundle per patient, identical to generateCohort, and reports progress', async (t) => {
  const dir = t.testdir();
  const out = join(dir, 'cohort');
  const cli = io();
  t.equal(await run(['--seed', '42', '--count', '12', '--out', out, '--now', '2026-01-01'], cli), 0);
  const expected = generateCohort({ seed: 42, count: 12, now: new Date('2026-01-01T00:00:00Z') });
  const files = readdirSync(out).sort();
  t.same(files, expected.map(fileNameFor).sort());
  for (const bundle of expected) {
    t.equal(readFileSync(join(out, fileNameFor(bundle)), 'utf8'), `${JSON.stringify(bundle, null, 2)}\n`);
  }
  t.same(cli.err, [
    'generated 2/12\n',
    'generated 4/12\n',
    'generated 6/12\n',
    'generated 8/12\n',
    'generated 10/12\n',
    'generated 12/12\n',
  ]);
  t.equal(cli.out[0], `wrote 12 patients to ${out} (seed 42, now 2026-01-01T00:00:00.000Z)\n`);
  const resourceCount = expected.reduce((sum, b) => sum + b.entry!.length, 0);
  t.match(cli.out[1], new RegExp(`^resources: ${resourceCount} \\(Patient 12, `));

  const again = io();
  const out2 = join(dir, 'again');
  t.equal(await run(['--seed', '42', '--count', '12', '--out', out2, '--now', '2026-01-01'], again), 0);
  t.same(
    readdirSync(out2).map((f) => readFileSync(join(out2, f), 'utf8')),
    readdirSync(out).map((f) => readFileSync(join(out, f), 'utf8')),
    'a second run writes byte-identical files',
  );
});

t.test('run on a terminal updates one counter line', async (t) => {
  const dir = t.testdir();
  const cli = io(true);
  t.equal(
    await run(
      ['--seed', '1', '--count', '3', '--out', dir, '--now', '2026-01-01', '--objection-rate', '1'],
      cli,
    ),
    0,
  );
  t.same(cli.err, ['\rgenerated 1/3', '\rgenerated 2/3', '\rgenerated 3/3', '\n']);
  t.match(cli.out[1], /Consent 3/);
});

t.test('run reports bad arguments (exit 2), help (exit 0) and write errors (exit 1)', async (t) => {
  const bad = io();
  t.equal(await run(['--seed', 'x'], bad), 2);
  t.same(bad.err, [`generate: --seed must be an integer (got "x")\n\n${USAGE}`]);
  t.same(bad.out, []);

  const help = io();
  t.equal(await run(['--help'], help), 0);
  t.same(help.out, [USAGE]);

  const dir = t.testdir({ 'a-file': 'not a directory' });
  const blocked = io(true);
  t.equal(
    await run(
      ['--seed', '1', '--count', '2', '--out', join(dir, 'a-file', 'sub'), '--now', '2026-01-01'],
      blocked,
    ),
    1,
  );
  t.match(blocked.err.at(-1), /^generate: cannot write to .*a-file.sub: ENOTDIR/);
});

t.test('the script runs as a command and exits 2 on bad input', async (t) => {
  const script = fileURLToPath(new URL('../../../tools/synthetic/generate.ts', import.meta.url));
  const result = spawnSync(process.execPath, [...process.execArgv, script, '--count', '0'], {
    encoding: 'utf8',
  });
  t.equal(result.status, 2, 'exit code 2');
  t.match(result.stderr, /^generate: --seed is required\n/);
});

t.test('--follow-up writes follow-up records drawn from the model, and the truth', async (t) => {
  const out = t.testdir({});
  const cli = io();
  const args = ['--seed', '7', '--count', '30', '--out', out, '--now', '2026-11-22T09:30:00Z'];
  t.equal(await run([...args, '--follow-up', 'models/knee-oa-progression/1.0.0'], cli), 0, cli.err.join(''));
  const truth = JSON.parse(readFileSync(join(out, 'follow-up-truth.json'), 'utf8')) as {
    patientId: string;
    risks: number[];
    outcome: 0 | 1;
  }[];
  const records = readFileSync(join(out, 'follow-up', 'follow-up.ndjson'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  // Seed 7: four of the 30 patients have knee OA recorded and are scored, one with the outcome.
  t.same(
    truth.map((f) => f.outcome),
    [0, 0, 1, 0],
  );
  t.equal(records.length, truth.length, 'one record per patient scored');
  truth.forEach((f, i) => {
    const r = records[i];
    t.equal(r.subject.reference, `Patient/${f.patientId}`);
    t.equal(r.code.coding[0].code, 'medial-jsn-loss');
    // The record says what the outcome definition looks for: 0.5 mm or more within 24 months, or not.
    t.equal(r.valueQuantity.value >= 0.5, f.outcome === 1);
    t.equal(r.effectiveDateTime, f.outcome === 1 ? '2027-11-22T09:30:00.000Z' : '2028-12-22T09:30:00.000Z');
  });
  t.match(
    cli.out.at(-1),
    /^follow-up: \d+ patients scored by knee-oa-progression 1\.0\.0, \d+ with the outcome \(simulated\)\n$/,
  );
  // Same seed, same draws.
  const again = t.testdir({});
  t.equal(
    await run(
      [...args.map((a) => (a === out ? again : a)), '--follow-up', 'models/knee-oa-progression/1.0.0'],
      io(),
    ),
    0,
  );
  t.equal(
    readFileSync(join(again, 'follow-up-truth.json'), 'utf8'),
    readFileSync(join(out, 'follow-up-truth.json'), 'utf8'),
  );

  const bad = io();
  t.equal(await run([...args, '--follow-up', 'models/no-such-model'], bad), 2);
  t.match(bad.err.join(''), /^generate: --follow-up: cannot load the model at models\/no-such-model: /);
});
