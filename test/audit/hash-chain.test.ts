import t from 'tap';
import { toServerForm } from '../../tools/synthetic/bundle.js';
import { generatePatient } from '../../tools/synthetic/patients.js';
import { createRng } from '../../tools/synthetic/random.js';
import { NOW } from '../helpers/app.js';
import {
  type ChainRow,
  canonicalJson,
  canonicalJsonSlow,
  chainHash,
  GENESIS,
  sha256Hex,
  verifyChain,
} from '../../src/audit/hash-chain.js';

t.test('canonical JSON sorts keys at every depth and has no whitespace', async (t) => {
  t.equal(
    canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }),
    '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}',
  );
  t.equal(canonicalJson({ a: 1, b: 2 }), canonicalJson({ b: 2, a: 1 }));
  t.equal(canonicalJson([]), '[]');
  t.equal(canonicalJson({}), '{}');
  t.equal(canonicalJson(null), 'null');
  t.equal(canonicalJson(true), 'true');
  t.equal(canonicalJson('é"\n'), '"é\\"\\n"');
  t.equal(canonicalJson(0.1), '0.1');
});

t.test(
  'canonical JSON leaves out undefined members as JSON does, and refuses what JSON cannot hold',
  async (t) => {
    t.equal(canonicalJson({ a: undefined, b: 1 }), '{"b":1}');
    t.equal(canonicalJson([undefined, 1]), '[null,1]');
    t.throws(() => canonicalJson({ a: Number.NaN }), /NaN is not a JSON number/);
    t.throws(() => canonicalJson(Number.POSITIVE_INFINITY), /Infinity is not a JSON number/);
    t.throws(() => canonicalJson({ f: () => 1 }), /cannot encode a function/);
    t.throws(() => canonicalJson(1n), /cannot encode a bigint/);
  },
);

t.test('the fast and the iterative canonical JSON write the same text', async (t) => {
  const values: unknown[] = [
    { b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } },
    { a: undefined, b: [undefined, null, -0, 1e21, 'é\u2028'], c: {} },
    { '': 1, B: 2, a: 3, é: 4, '10': 5, '9': 6 },
    // Own keys only, before toJSON(): a Date is an object without keys, as the iterative walk sees it.
    { at: new Date(0), map: new Map([[1, 2]]) },
    [[[]], {}, 'x'],
    'top',
    7,
    null,
  ];
  for (let i = 0; i < 5; i++) {
    values.push(toServerForm(generatePatient(createRng(3, i), { now: NOW, kneeOa: true, lesions: 1 })));
  }
  for (const [i, value] of values.entries()) {
    t.equal(canonicalJson(value), canonicalJsonSlow(value), `value ${i}`);
  }
  t.equal(canonicalJson({ at: new Date(0) }), '{"at":{}}');
  for (const bad of [{ a: [1, Number.NaN] }, [() => 1], { s: Symbol('s') }, undefined]) {
    t.throws(() => canonicalJson(bad), TypeError);
    t.throws(() => canonicalJsonSlow(bad), TypeError);
  }
});

t.test('sha256Hex is SHA-256 of the UTF-8 text', async (t) => {
  // FIPS 180-2 test vector.
  t.equal(sha256Hex('abc'), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
});

function chain(n: number): ChainRow[] {
  const rows: ChainRow[] = [];
  let prev = GENESIS;
  for (let seq = 1; seq <= n; seq++) {
    const content = {
      seq,
      kind: 'objection',
      at: `2026-11-22T09:3${seq}:00.000Z`,
      serviceId: 's',
      pseudonym: null,
      payload: `{"n":${seq}}`,
    };
    const hash = chainHash(prev, content);
    rows.push({ ...content, prevHash: prev, hash });
    prev = hash;
  }
  return rows;
}

async function* pages(rows: ChainRow[], size = 2): AsyncGenerator<ChainRow[]> {
  for (let i = 0; i < rows.length; i += size) yield rows.slice(i, i + size);
}

const headOf = (rows: ChainRow[]) => ({ seq: rows.at(-1)?.seq ?? 0, hash: rows.at(-1)?.hash ?? GENESIS });

t.test('every column of a row is in its hash', async (t) => {
  const [row] = chain(1);
  const base = chainHash(GENESIS, row!);
  t.equal(base, row!.hash);
  for (const change of [
    { seq: 2 },
    { kind: 'feedback' },
    { at: 'x' },
    { serviceId: 't' },
    { pseudonym: 'p' },
    { payload: '{}' },
  ]) {
    t.not(chainHash(GENESIS, { ...row!, ...change }), base, JSON.stringify(change));
  }
  t.not(chainHash('1'.repeat(64), row!), base, 'and the previous hash');
});

t.test('an intact chain verifies, across pages, and an empty one too', async (t) => {
  const rows = chain(5);
  t.same(await verifyChain(pages(rows), headOf(rows)), { ok: true, rows: 5, last: headOf(rows) });
  t.same(await verifyChain(pages([]), { seq: 0, hash: GENESIS }), {
    ok: true,
    rows: 0,
    last: { seq: 0, hash: GENESIS },
  });
});

t.test('an edited row is named', async (t) => {
  const rows = chain(5);
  rows[2] = { ...rows[2]!, payload: '{"n":33}' };
  const report = await verifyChain(pages(rows), headOf(rows));
  t.same(report, {
    ok: false,
    rows: 2,
    last: { seq: 2, hash: rows[1]!.hash },
    problem: { seq: 3, problem: 'edited', detail: "row 3's content no longer matches its hash" },
  });
});

t.test('an edited and rehashed row is named by the next row', async (t) => {
  const rows = chain(5);
  const edited = { ...rows[2]!, payload: '{"n":33}' };
  rows[2] = { ...edited, hash: chainHash(edited.prevHash, edited) };
  const report = await verifyChain(pages(rows), headOf(rows));
  t.same(report.problem, {
    seq: 3,
    problem: 'edited',
    detail: 'row 4 links to a different version of row 3: row 3 was edited and rehashed',
  });
});

t.test('a first row that does not start from the genesis hash is named', async (t) => {
  const rows = chain(2);
  const first = { ...rows[0]!, prevHash: '1'.repeat(64) };
  rows[0] = { ...first, hash: chainHash(first.prevHash, first) };
  t.same((await verifyChain(pages(rows), headOf(rows))).problem, {
    seq: 1,
    problem: 'edited',
    detail: 'row 1 does not start the chain',
  });
});

t.test('deleted rows are named: one, several, and the last ones', async (t) => {
  const rows = chain(6);
  t.same((await verifyChain(pages(rows.filter((r) => r.seq !== 2)), headOf(rows))).problem, {
    seq: 2,
    problem: 'deleted',
    detail: 'row 2 is missing (row 3 follows row 1)',
  });
  t.same((await verifyChain(pages(rows.filter((r) => r.seq < 2 || r.seq > 4)), headOf(rows))).problem, {
    seq: 2,
    problem: 'deleted',
    detail: 'rows 2…4 are missing (row 5 follows row 1)',
  });
  t.same((await verifyChain(pages(rows.slice(0, 4)), headOf(rows))).problem, {
    seq: 5,
    problem: 'deleted',
    detail: 'the chain head is at row 6 but the last row is 4: the last rows were deleted',
  });
  t.same((await verifyChain(pages(rows), null)).problem, {
    seq: 7,
    problem: 'deleted',
    detail: 'the chain head record is missing',
  });
});

t.test('a head behind the last row, or a row out of sequence, is reported as an edit', async (t) => {
  const rows = chain(3);
  t.same((await verifyChain(pages(rows), { seq: 2, hash: rows[1]!.hash })).problem, {
    seq: 2,
    problem: 'edited',
    detail: 'the chain head (row 2) does not match the last row (3)',
  });
  t.same((await verifyChain(pages([rows[0]!, rows[1]!, rows[1]!]), headOf(rows))).problem, {
    seq: 3,
    problem: 'edited',
    detail: 'row 2 is out of sequence after row 2',
  });
});

t.test('canonical JSON handles nesting far deeper than the call stack would', async (t) => {
  let deep: unknown = 'leaf';
  for (let i = 0; i < 200_000; i++) deep = i % 2 ? { a: deep } : [deep];
  const text = canonicalJson(deep);
  t.equal(text.length, 100_000 * ('{"a":'.length + '}'.length + 2) + '"leaf"'.length);
  t.ok(text.startsWith('{"a":[{"a":['));
});
