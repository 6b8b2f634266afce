// The published Double Ratchet transcript (tests/vectors/ratchet.json, made by
// scripts/make-session-vectors-ratchet.ts): replayed byte for byte, and each
// message checked against the spec's byte layout with node primitives alone.
import { test } from 'node:test';
import { strict as assert } from 'node:assert';
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Ratchet, ratchetMessageHeader, type RatchetStateJSON } from '../../src/core/session/ratchet.js';
import { EvsealError } from '../../src/core/errors.js';

type Who = 'initiator' | 'responder';
interface Vectors {
  sk: string;
  ad: string;
  maxSkipped: number;
  initiator: { keys: string[]; publicKeys: string[] };
  responder: { keys: string[]; publicKeys: string[] };
  messages: { id: number; from: Who; plaintext: string; header: { dh: string; pn: number; n: number }; mk: string; wire: string; wireB64u: string }[];
  events: { op: 'send' | 'receive'; party: Who; message: number }[];
  finalState: Record<Who, RatchetStateJSON>;
}
const V = JSON.parse(readFileSync(new URL('../vectors/ratchet.json', import.meta.url), 'utf8')) as Vectors;
const h = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

function replay() {
  const used: Record<Who, number> = { initiator: 0, responder: 0 };
  const keygen = (who: Who) => (): Uint8Array => {
    const k = V[who].keys[used[who]++];
    assert.ok(k !== undefined, `${who}: more key pairs than the vectors list`);
    return h(k);
  };
  const o = (who: Who) => ({ maxSkipped: V.maxSkipped, keygen: keygen(who) });
  const A = Ratchet.initInitiator(h(V.sk), h(V.ad), o('initiator'));
  assert.equal(hex(A.ratchetPublicKey!), V.initiator.publicKeys[0]);
  const B = Ratchet.initResponder(h(V.sk), h(V.ad), A.ratchetPublicKey!, o('responder'));
  return { P: { initiator: A, responder: B } as Record<Who, Ratchet>, used };
}

test('ratchet vectors: every send reproduces the wire bytes, every receive opens', () => {
  const { P, used } = replay();
  for (const ev of V.events) {
    const m = V.messages[ev.message]!;
    if (ev.op === 'send') {
      assert.equal(ev.party, m.from);
      const wire = P[ev.party].encrypt(h(m.plaintext));
      assert.equal(hex(wire), m.wire, `message ${m.id}`);
      // After a send, the sender's current ratchet key is the header's.
      assert.equal(hex(P[ev.party].ratchetPublicKey!), m.header.dh);
    } else {
      assert.equal(hex(P[ev.party].decrypt(h(m.wire))), m.plaintext, `message ${m.id}`);
    }
  }
  assert.equal(used.initiator, V.initiator.keys.length, 'every listed initiator key was used');
  assert.equal(used.responder, V.responder.keys.length, 'every listed responder key was used');
  assert.deepEqual(P.initiator.toJSON(), V.finalState.initiator);
  assert.deepEqual(P.responder.toJSON(), V.finalState.responder);
  // Replays of the delivered messages are refused by the final states.
  const received = V.events.filter((e) => e.op === 'receive');
  assert.ok(received.length < V.messages.length, 'one message stays undelivered (its key stays stored)');
  for (const ev of received) {
    assert.throws(() => P[ev.party].decrypt(h(V.messages[ev.message]!.wire)), (e: unknown) => e instanceof EvsealError && e.code === 'ERR_OPEN_FAILED');
  }
  // The final states resume from their JSON.
  const A = Ratchet.fromJSON(V.finalState.initiator);
  const B = Ratchet.fromJSON(V.finalState.responder);
  assert.equal(new TextDecoder().decode(B.decrypt(A.encrypt(new TextEncoder().encode('after the vectors')))), 'after the vectors');
  // The undelivered message opens late, with the key the responder stored.
  for (const m of V.messages) {
    if (!received.some((e) => e.message === m.id)) assert.equal(hex(B.decrypt(h(m.wire))), m.plaintext);
  }
  assert.equal(B.skippedCount, 0);
});

test('ratchet vectors: byte layout and ENCRYPT from the spec alone', () => {
  const dhs = new Set([...V.initiator.publicKeys, ...V.responder.publicKeys]);
  for (const m of V.messages) {
    const w = h(m.wire);
    assert.equal(Buffer.from(w).toString('base64url'), m.wireB64u);
    assert.equal(w[0], 1, 'version');
    assert.deepEqual(ratchetMessageHeader(w), { dh: h(m.header.dh), pn: m.header.pn, n: m.header.n });
    assert.ok(dhs.has(m.header.dh), 'the header dh is one of the listed ratchet public keys');
    const header = w.subarray(1, 41);
    assert.equal(hex(header), m.header.dh + m.header.pn.toString(16).padStart(8, '0') + m.header.n.toString(16).padStart(8, '0'));
    // AAD = lp(ad, header) = u32(len ad) || ad || u32(40) || header
    const ad = h(V.ad);
    const len = Buffer.alloc(4);
    len.writeUInt32BE(ad.length);
    const aad = Buffer.concat([len, ad, Buffer.from([0, 0, 0, 40]), header]);
    // key || nonce = HKDF-SHA256(salt = 0^32, ikm = mk, info = "evseal/v1 ratchet message", 44)
    const kn = Buffer.from(hkdfSync('sha256', h(m.mk), new Uint8Array(32), 'evseal/v1 ratchet message', 44));
    const d = createDecipheriv('aes-256-gcm', kn.subarray(0, 32), kn.subarray(32));
    d.setAAD(aad);
    d.setAuthTag(w.subarray(w.length - 16));
    const pt = Buffer.concat([d.update(w.subarray(41, w.length - 16)), d.final()]);
    assert.equal(pt.toString('hex'), m.plaintext, `message ${m.id}`);
    assert.equal(w.length, 1 + 40 + pt.length + 16);
  }
});

test('ratchet vectors: the transcript has direction changes and out-of-order deliveries', () => {
  let outOfOrder = 0;
  const last: Record<Who, number> = { initiator: -1, responder: -1 };
  for (const ev of V.events) {
    if (ev.op !== 'receive') continue;
    if (ev.message < last[ev.party]) outOfOrder++;
    last[ev.party] = Math.max(last[ev.party], ev.message);
  }
  assert.ok(outOfOrder >= 1);
  assert.ok(V.initiator.keys.length >= 3 && V.responder.keys.length >= 3, 'several DH steps on each side');
  assert.ok(V.messages.some((m) => m.plaintext === ''), 'an empty plaintext');
});
