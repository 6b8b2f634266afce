// Type declarations for evseal-lite.mjs (so the TypeScript test can import it under `strict`).

export declare class EvsealLiteError extends Error {
  constructor(reason: string, detail?: string);
  readonly reason: string;
}

export type SuiteName =
  | 'XWING-SHA256-AES256GCM'
  | 'X25519-SHA256-AES256GCM'
  | 'X25519-SHA256-CHACHA20POLY1305'
  | 'P256-SHA256-AES256GCM';
export declare const SUITES: Record<SuiteName, { kem: 'XWING' | 'X25519' | 'P256'; kdf: number; aead: number }>;
export declare const DEFAULT_SUITES: string[];

export interface TrustAnchorInput {
  name: string;
  cert?: string;
  certDer?: Uint8Array;
  roles: string[] | '*';
  pins?: string[];
}
export interface TrustPolicy {
  anchors: { name: string; certDer: Uint8Array; roles: string[] | '*'; pins?: string[] }[];
}
export declare function makeTrustPolicy(input: string | Uint8Array | { anchors: TrustAnchorInput[] }): TrustPolicy;

export declare class RevocationState {
  constructor(policy: TrustPolicy);
  addCrl(pemOrDer: string | Uint8Array): { anchor: string; crlNumber: bigint; thisUpdate: number; nextUpdate: number };
}

export interface ValidatedIdentity {
  role: string;
  id: string;
  operator: string;
  certDer: Uint8Array;
  certHash: Uint8Array;
  fingerprint: string;
  publicKey: Uint8Array;
  alg: 'ed25519' | 'ecdsa-p256';
  anchor: string;
  notBefore: number;
  notAfter: number;
  serialHex: string;
}
export declare function validateChain(
  chain: Uint8Array[],
  policy: TrustPolicy,
  revocation: RevocationState | 'skip',
  now: number,
  expectedRole?: string,
): ValidatedIdentity;

export interface RolePolicy {
  rules: { kind: string; from: string[]; to: string[] }[];
}
export declare const DEFAULT_ROLE_POLICY: RolePolicy;

export interface TrustOptions {
  /** a CA PEM (one anchor for every role) or a trust policy */
  trust?: string | { anchors: TrustAnchorInput[] };
  policy?: TrustPolicy;
  crls?: (string | Uint8Array)[];
  revocation?: RevocationState | 'skip';
  /** trusted time, Unix seconds (default: wall clock) */
  now?: number;
  clock?: { mark?: number };
  rolePolicy?: RolePolicy;
}

export interface VerifiedBundle {
  identity: ValidatedIdentity;
  suites: string[];
  suitesIssued: number;
  livePrekeys: { kid: string; kem: string; pub: string; created: number; expires: number; sig: string; pubBytes: Uint8Array }[];
}
export declare function verifyBundle(
  bundle: unknown,
  ctx: { policy: TrustPolicy; revocation: RevocationState | 'skip'; now: number; expectedRole?: string },
): VerifiedBundle;

export interface SenderInput {
  cert: string | Uint8Array;
  key: string | { alg: 'ed25519' | 'ecdsa-p256'; sk: Uint8Array };
  suites?: string[];
}
export interface SealOptions extends TrustOptions {
  kind?: string;
  cty?: string;
  lifetime?: number;
  suite?: string;
  msgId?: string | Uint8Array;
  randomness?: string | Uint8Array;
  expectedRole?: string;
}
export declare function sealEnvelope(sender: SenderInput, recipientBundle: unknown, plaintext: Uint8Array, opts?: SealOptions): string;

export interface RecipientInput {
  id?: string;
  role?: string;
  cert?: string;
  suites: string[];
  prekeys: { kid: string; kem: string; sk: string | Uint8Array }[];
}
export interface OpenOptions extends TrustOptions {
  skew?: number;
  maxLifetime?: number;
  replay?: Set<string>;
}
export interface EnvelopeHeader {
  v: number;
  suite: string;
  from: string;
  fromCert: string;
  to: string;
  kid: string;
  id: string;
  created: number;
  expires: number;
  kind: string;
  cty: string;
}
export declare function openEnvelope(text: string, recipient: RecipientInput, opts?: OpenOptions): Uint8Array;
export declare function openEnvelopeDetailed(
  text: string,
  recipient: RecipientInput,
  opts?: OpenOptions,
): { plaintext: Uint8Array; header: EnvelopeHeader; sender: ValidatedIdentity };

export declare function b64uEncode(bytes: Uint8Array): string;
export declare function b64uDecode(s: string): Uint8Array;
export declare function canonicalJson(fields: [string, unknown][]): string;
export declare function lp(...fields: Uint8Array[]): Uint8Array;
export declare function concat(...parts: Uint8Array[]): Uint8Array;
export declare function pemToDer(pem: string | Uint8Array, label: string): Uint8Array;
export declare function parsePrivateKey(pem: string): { alg: 'ed25519' | 'ecdsa-p256'; sk: Uint8Array };
export declare function certHash(der: Uint8Array): Uint8Array;
export declare function fingerprint(der: Uint8Array): string;
export declare function prekeyKid(kem: string, pub: Uint8Array): string;
export declare function signWith(key: { alg: 'ed25519' | 'ecdsa-p256'; sk: Uint8Array }, context: string, message: Uint8Array): Uint8Array;
export declare const hpke: {
  sealBase(suite: string, pkR: Uint8Array, info: Uint8Array, aad: Uint8Array, pt: Uint8Array, randomness?: Uint8Array): { enc: Uint8Array; ct: Uint8Array };
  openBase(suite: string, enc: Uint8Array, skR: Uint8Array, info: Uint8Array, aad: Uint8Array, ct: Uint8Array): Uint8Array;
};
