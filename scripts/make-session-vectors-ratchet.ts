// Regenerates tests/vectors/ratchet.json (run: npx tsx scripts/make-session-vectors-ratchet.ts).
// A deterministic Double Ratchet transcript (docs/protocol.md §14.9):
// given the session secret, the associated data and each side's sequence of
// ratchet private keys, a scripted conversation with direction changes and
// out-of-order deliveries. Every input is derived from fixed labels, so the
// file is reproducible byte for byte.
import { createHash, createHmac, createPrivateKey, createPublicKey, diffieHellman, hkdfSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { b64u } from '../src/core/base64url.js';
import { lp, toHex, utf8 } from '../src/core/bytes.js';
import { Ratchet, ratchetMessageHeader, type RatchetStateJSON } from '../src/core/session/ratchet.js';

const OUT = new URL('../tests/vectors/ratchet.json', import.meta.url);
const det = (label: string): Uint8Array => new Uint8Array(createHash('sha256').update(`evseal/v1 ratchet vectors/${label}`).digest());

const sk = det('session secret');
// Shaped like a session's AD: lp(initiator cert hash, responder cert hash, 16-byte session id).
const ad = lp(det('initiator cert'), det('responder cert'), det('session id').subarray(0, 16));
const initiatorKeys = [0, 1, 2, 3].map((i) => det(`initiator ratchet key ${i}`));
const responderKeys = [0, 1, 2, 3].map((i) => det(`responder ratchet key ${i}`));

function x25519Public(k: Uint8Array): Uint8Array {
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(k), x: '' }, format: 'jwk' });
  return new Uint8Array(Buffer.from(createPublicKey(priv).export({ format: 'jwk' }).x as string, 'base64url'));
}
function x25519(k: Uint8Array, pub: Uint8Array): Buffer {
  const priv = createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(k), x: '' }, format: 'jwk' });
  return diffieHellman({ privateKey: priv, publicKey: createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(pub) }, format: 'jwk' }) });
}
const fromB = (s: string): Buffer => Buffer.from(s, 'base64url');

type Who = 'initiator' | 'responder';
const used: Record<Who, number> = { initiator: 0, responder: 0 };
const keygen = (who: Who, keys: Uint8Array[]) => (): Uint8Array => {
  const k = keys[used[who]++];
  if (!k) throw new Error(`${who}: keygen sequence exhausted`);
  return k;
};
const parties: Record<Who, Ratchet> = {
  initiator: Ratchet.initInitiator(sk, ad, { keygen: keygen('initiator', initiatorKeys) }),
  responder: undefined as unknown as Ratchet,
};
parties.responder = Ratchet.initResponder(sk, ad, parties.initiator.ratchetPublicKey!, { keygen: keygen('responder', responderKeys) });

/** The message key the sender is about to use, recomputed from its state (and, for the responder's first send, its next key). */
function senderMessageKey(who: Who, S: RatchetStateJSON): Buffer {
  let ck: Buffer;
  if (S.cks !== null) ck = fromB(S.cks);
  else {
    const next = responderKeys[used[who]]!;
    ck = Buffer.from(hkdfSync('sha256', x25519(next, fromB(S.dhr!)), fromB(S.rk), 'evseal/v1 ratchet root', 64)).subarray(32);
  }
  return createHmac('sha256', ck).update(Buffer.of(1)).digest();
}

interface Message {
  id: number;
  from: Who;
  plaintext: string;
  header: { dh: string; pn: number; n: number };
  mk: string;
  wire: string;
  wireB64u: string;
}
const messages: Message[] = [];
const events: { op: 'send' | 'receive'; party: Who; message: number }[] = [];

function send(from: Who, text: string): number {
  const r = parties[from];
  const mk = senderMessageKey(from, r.toJSON());
  const wire = r.encrypt(utf8(text));
  const h = ratchetMessageHeader(wire);
  const id = messages.length;
  messages.push({ id, from, plaintext: toHex(utf8(text)), header: { dh: toHex(h.dh), pn: h.pn, n: h.n }, mk: mk.toString('hex'), wire: toHex(wire), wireB64u: b64u(wire) });
  events.push({ op: 'send', party: from, message: id });
  return id;
}
function receive(to: Who, id: number): void {
  const m = messages[id]!;
  const pt = parties[to].decrypt(Buffer.from(m.wire, 'hex'));
  if (toHex(pt) !== m.plaintext) throw new Error(`message ${id} did not round-trip`);
  events.push({ op: 'receive', party: to, message: id });
}

// The script: direction changes and out-of-order deliveries.
const a = [send('initiator', 'A0 #0: first message, on the initiator chain'), send('initiator', 'A0 #1')];
receive('responder', a[0]!);
receive('responder', a[1]!); // no DH step: the header dh is A0, already DHr
const b = [send('responder', 'B1 #0: the responder\'s first send makes B1'), send('responder', 'B1 #1'), send('responder', 'B1 #2')];
receive('initiator', b[0]!); // DH step: A takes A1
receive('initiator', b[2]!); // out of order: B1 #1 is skipped and stored
receive('initiator', b[1]!); // opened with the stored key
const c = [send('initiator', 'A1 #0'), send('initiator', '')]; // an empty plaintext too
receive('responder', c[1]!); // DH step with the first message of A1 missing: A1 #0 is stored
const d = send('responder', 'B2 #0');
receive('responder', c[0]!); // the stored key, after the responder has moved on
receive('initiator', d);
const e = [send('initiator', 'A2 #0'), send('initiator', 'A2 #1'), send('initiator', 'A2 #2')];
receive('responder', e[2]!);
receive('responder', e[0]!);
const f = send('responder', 'B3 #0: one key of A2 is still stored');
receive('initiator', f);

const out = {
  description:
    'Double Ratchet transcript (docs/protocol.md §14). Replay `events` in order: each party is initialised with `sk` and `ad` ' +
    '(the responder with the initiator\'s first ratchet public key), and its keygen returns its `keys` in order. Every `send` MUST ' +
    'produce `wire` byte for byte; every `receive` MUST open to `plaintext`. `mk` is the message key of each message. All byte strings are hex.',
  sk: toHex(sk),
  ad: toHex(ad),
  maxSkipped: 1000,
  initiator: { keys: initiatorKeys.slice(0, used.initiator).map(toHex), publicKeys: initiatorKeys.slice(0, used.initiator).map((k) => toHex(x25519Public(k))) },
  responder: { keys: responderKeys.slice(0, used.responder).map(toHex), publicKeys: responderKeys.slice(0, used.responder).map((k) => toHex(x25519Public(k))) },
  messages,
  events,
  finalState: { initiator: parties.initiator.toJSON(), responder: parties.responder.toJSON() },
};
writeFileSync(OUT, JSON.stringify(out, null, 2) + '\n');
console.log(`wrote ${OUT.pathname}: ${messages.length} messages, ${events.length} events`);
