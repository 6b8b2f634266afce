// RFC 9162 Merkle tree: known-answer vectors from the Certificate
// Transparency reference test data (transparency-dev/merkle,
// proof/verify_test.go: the 8-leaf tree used since RFC 6962), then
// properties against an independent naive MTH.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fc from 'fast-check';
import {
  consistencyPath,
  emptyRoot,
  inclusionPath,
  leafHash,
  MerkleTree,
  rootAt,
  verifyConsistency,
  verifyInclusion,
  type PerfectNode,
} from '../../src/core/merkle.js';

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');
const unhex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

const LEAVES = ['', '00', '10', '2021', '3031', '40414243', '5051525354555657', '606162636465666768696a6b6c6d6e6f'].map(unhex);
const EMPTY = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const ROOTS = [
  '6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d',
  'fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125',
  'aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77',
  'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7',
  '4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4',
  '76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef',
  'ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c',
  '5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328',
];
// [leaf (1-based, as in the reference), tree size, path]
const INCLUSION: [number, number, string[]][] = [
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [3, 3, ['fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125']],
  [2, 5, ['6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
];
// [size1, size2, path]
const CONSISTENCY: [number, number, string[]][] = [
  [1, 1, []],
  [1, 8, ['96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7', '5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', '6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4']],
  [6, 8, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
  [2, 5, ['5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e', 'bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b']],
  [6, 7, ['0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a', 'b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f', 'd37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7']],
];

/** The definition, written out independently of src: the reference the tree is held to. */
function naiveMth(data: readonly Uint8Array[]): Uint8Array {
  const sha = (...p: Uint8Array[]): Uint8Array => {
    const h = createHash('sha256');
    for (const x of p) h.update(x);
    return new Uint8Array(h.digest());
  };
  if (data.length === 0) return sha();
  if (data.length === 1) return sha(Uint8Array.of(0), data[0] as Uint8Array);
  let k = 1;
  while (k * 2 < data.length) k *= 2;
  return sha(Uint8Array.of(1), naiveMth(data.slice(0, k)), naiveMth(data.slice(k)));
}

function treeOf(data: readonly Uint8Array[]): { tree: MerkleTree; node: PerfectNode } {
  const tree = new MerkleTree();
  for (const d of data) tree.append(leafHash(d));
  return { tree, node: (level, index) => tree.node(level, index) as Uint8Array };
}

const flip = (b: Uint8Array, bit: number): Uint8Array => {
  const c = b.slice();
  c[bit >> 3] = (c[bit >> 3] as number) ^ (1 << (bit & 7));
  return c;
};
const SOME = unhex('abacaba000000000000000000000000000000000000000000060061e00123456');

test('roots of the reference tree, sizes 0..8, incrementally and from retained nodes', () => {
  assert.equal(hex(emptyRoot()), EMPTY);
  assert.equal(hex(new MerkleTree().root()), EMPTY);
  const { tree, node } = treeOf([]);
  LEAVES.forEach((d, i) => {
    tree.append(leafHash(d));
    assert.equal(hex(tree.root()), ROOTS[i], `size ${i + 1}`);
    assert.equal(hex(naiveMth(LEAVES.slice(0, i + 1))), ROOTS[i]);
  });
  for (let n = 0; n <= 8; n++) assert.equal(hex(rootAt(n, node)), n === 0 ? EMPTY : ROOTS[n - 1]);
});

test('inclusion paths of the reference tree: generated exactly, verified, and every corruption refused', () => {
  const { node } = treeOf(LEAVES);
  for (const [leaf, size, want] of INCLUSION) {
    const index = leaf - 1;
    const path = inclusionPath(index, size, node);
    assert.deepEqual(path.map(hex), want, `path ${index}/${size}`);
    const root = unhex(ROOTS[size - 1] as string);
    const lh = leafHash(LEAVES[index] as Uint8Array);
    assert.equal(verifyInclusion(index, size, lh, path, root), true);
    const probes: [string, () => boolean][] = [
      ['index - 1', () => verifyInclusion(index - 1, size, lh, path, root)],
      ['index + 1', () => verifyInclusion(index + 1, size, lh, path, root)],
      ['index ^ 2', () => verifyInclusion(index ^ 2, size, lh, path, root)],
      ['size * 2', () => verifyInclusion(index, size * 2, lh, path, root)],
      ['size / 2', () => verifyInclusion(index, Math.floor(size / 2), lh, path, root)],
      ['wrong leaf', () => verifyInclusion(index, size, leafHash(Uint8Array.of(9)), path, root)],
      ['empty root', () => verifyInclusion(index, size, lh, path, unhex(EMPTY))],
      ['other root', () => verifyInclusion(index, size, lh, path, SOME)],
      ['trailing garbage', () => verifyInclusion(index, size, lh, [...path, new Uint8Array(0)], root)],
      ['trailing root', () => verifyInclusion(index, size, lh, [...path, root], root)],
      ['preceding root', () => verifyInclusion(index, size, lh, [root, ...path], root)],
      ['removed component', () => verifyInclusion(index, size, lh, path.slice(0, -1), root)],
      ['inserted component', () => path.length > 1 && verifyInclusion(index, size, lh, [path[0] as Uint8Array, SOME, ...path.slice(1)], root)],
      ...path.map((_, i): [string, () => boolean] => [`flipped path[${i}]`, () => verifyInclusion(index, size, lh, path.map((p, j) => (j === i ? flip(p, 3) : p)), root)]),
    ];
    for (const [what, probe] of probes) assert.equal(probe(), false, `${index}/${size}: ${what} verified`);
  }
});

test('inclusion: degenerate sizes and indexes are refused', () => {
  const lh = leafHash(new TextEncoder().encode('data'));
  assert.equal(verifyInclusion(0, 1, lh, [], lh), true);
  for (const [i, n] of [[0, 0], [1, 0], [1, 1], [2, 1], [-1, 1], [0.5, 1]] as const) assert.equal(verifyInclusion(i, n, lh, [], lh), false, `${i}/${n}`);
  assert.equal(verifyInclusion(0, 1, lh, [], new Uint8Array(0)), false);
  assert.throws(() => inclusionPath(3, 3, () => lh), RangeError);
});

test('consistency proofs of the reference tree: generated exactly, verified, and every corruption refused', () => {
  const { node } = treeOf(LEAVES);
  for (const [m, n, want] of CONSISTENCY) {
    const proof = consistencyPath(m, n, node);
    assert.deepEqual(proof.map(hex), want, `proof ${m}->${n}`);
    const r1 = unhex(ROOTS[m - 1] as string);
    const r2 = unhex(ROOTS[n - 1] as string);
    assert.equal(verifyConsistency(m, n, r1, r2, proof), true);
    if (proof.length === 0) continue;
    const probes: [string, () => boolean][] = [
      ['size1 - 1', () => verifyConsistency(m - 1, n, r1, r2, proof)],
      ['size1 + 1', () => verifyConsistency(m + 1, n, r1, r2, proof)],
      ['size1 ^ 2', () => verifyConsistency(m ^ 2, n, r1, r2, proof)],
      ['size2 * 2', () => verifyConsistency(m, n * 2, r1, r2, proof)],
      ['size2 / 2', () => verifyConsistency(m, Math.floor(n / 2), r1, r2, proof)],
      ['other root1', () => verifyConsistency(m, n, SOME, r2, proof)],
      ['other root2', () => verifyConsistency(m, n, r1, SOME, proof)],
      ['swapped roots', () => verifyConsistency(m, n, r2, r1, proof)],
      ['empty proof', () => verifyConsistency(m, n, r1, r2, [])],
      ['trailing root2', () => verifyConsistency(m, n, r1, r2, [...proof, r2])],
      ['preceding root1', () => verifyConsistency(m, n, r1, r2, [r1, ...proof])],
      ['preceding proof[0]', () => verifyConsistency(m, n, r1, r2, [proof[0] as Uint8Array, ...proof])],
      ['truncated', () => verifyConsistency(m, n, r1, r2, proof.slice(0, -1))],
      ...proof.map((_, i): [string, () => boolean] => [`flipped proof[${i}]`, () => verifyConsistency(m, n, r1, r2, proof.map((p, j) => (j === i ? flip(p, 4) : p)))]),
    ];
    for (const [what, probe] of probes) assert.equal(probe(), false, `${m}->${n}: ${what} verified`);
  }
});

test('consistency: the trivial cases of RFC 9162 §2.1.4.2', () => {
  const [a, b] = [unhex(ROOTS[0] as string), unhex(ROOTS[1] as string)];
  assert.equal(verifyConsistency(0, 0, a, a, []), true);
  assert.equal(verifyConsistency(0, 5, a, b, []), true); // the empty tree is a prefix of every tree
  assert.equal(verifyConsistency(1, 1, b, b, []), true);
  assert.equal(verifyConsistency(0, 0, a, b, []), false); // same size, different roots
  assert.equal(verifyConsistency(1, 1, a, b, []), false);
  assert.equal(verifyConsistency(1, 1, a, a, [a]), false); // same size needs an empty proof
  assert.equal(verifyConsistency(0, 1, a, b, [a]), false);
  assert.equal(verifyConsistency(2, 1, a, b, []), false); // shrinking
  assert.equal(verifyConsistency(1, 2, a, b, []), false);
  assert.throws(() => consistencyPath(3, 2, () => a), RangeError);
});

test('retained levels: a tree keeping only levels >= 3 has exactly those nodes', () => {
  const full = treeOf(Array.from({ length: 40 }, (_, i) => Uint8Array.of(i)));
  const sparse = new MerkleTree(3);
  for (let i = 0; i < 40; i++) sparse.append(leafHash(Uint8Array.of(i)));
  assert.deepEqual(sparse.root(), full.tree.root());
  assert.equal(sparse.node(2, 0), undefined);
  assert.deepEqual(sparse.node(3, 4), full.node(3, 4));
  assert.deepEqual(sparse.node(5, 0), full.node(5, 0));
  assert.equal(sparse.node(3, 5), undefined); // leaves 40..47 are not all there
});

// Distinct leaves of any count up to max (fc.array would mostly draw short ones).
const dataArb = (max: number) =>
  fc.tuple(fc.integer({ min: 0, max }), fc.uint8Array({ maxLength: 6 })).map(([n, salt]) => Array.from({ length: n }, (_, i) => Uint8Array.of(i & 0xff, i >> 8, ...salt)));

test('property: the incremental root equals the naive MTH after every append', () => {
  fc.assert(
    fc.property(dataArb(70), (data) => {
      const tree = new MerkleTree();
      assert.deepEqual(tree.root(), naiveMth([]));
      data.forEach((d, i) => {
        tree.append(leafHash(d));
        assert.deepEqual(tree.root(), naiveMth(data.slice(0, i + 1)));
      });
    }),
  );
});

test('property: every inclusion proof verifies; a flipped bit in the proof or root fails', () => {
  fc.assert(
    fc.property(
      dataArb(300).filter((d) => d.length > 0),
      fc.nat(),
      fc.nat(),
      fc.nat(),
      (data, a, b, bit) => {
        const { node } = treeOf(data);
        const size = 1 + (a % data.length);
        const index = b % size;
        const root = naiveMth(data.slice(0, size));
        const lh = leafHash(data[index] as Uint8Array);
        const path = inclusionPath(index, size, node);
        assert.equal(verifyInclusion(index, size, lh, path, root), true);
        assert.equal(verifyInclusion(index, size, lh, path, flip(root, bit % 256)), false);
        assert.equal(verifyInclusion(index, size, flip(lh, bit % 256), path, root), false);
        path.forEach((_, i) => assert.equal(verifyInclusion(index, size, lh, path.map((p, j) => (j === i ? flip(p, bit % 256) : p)), root), false));
      },
    ),
  );
});

test('property: every consistency proof verifies; a flipped bit in the proof or either root fails', () => {
  fc.assert(
    fc.property(dataArb(300), fc.nat(), fc.nat(), fc.nat(), (data, a, b, bit) => {
      const { node } = treeOf(data);
      const to = a % (data.length + 1);
      const from = b % (to + 1);
      const r1 = naiveMth(data.slice(0, from));
      const r2 = naiveMth(data.slice(0, to));
      const proof = consistencyPath(from, to, node);
      assert.equal(verifyConsistency(from, to, r1, r2, proof), true);
      if (from === 0) return; // the empty tree is a prefix of anything: root1 is not checked
      assert.equal(verifyConsistency(from, to, flip(r1, bit % 256), r2, proof), false);
      assert.equal(verifyConsistency(from, to, r1, flip(r2, bit % 256), proof), false);
      proof.forEach((_, i) => assert.equal(verifyConsistency(from, to, r1, r2, proof.map((p, j) => (j === i ? flip(p, bit % 256) : p))), false));
    }),
  );
});
