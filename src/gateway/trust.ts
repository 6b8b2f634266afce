import { EventEmitter } from 'node:events';
import { readFileSync, unwatchFile, watchFile } from 'node:fs';
import { EvsealError, VerificationFailure } from '../core/errors.js';
import { RevocationState, validateChain, type TrustPolicy, type ValidatedIdentity } from '../core/x509/index.js';
import type { GatewayStore } from './store/store.js';
import type { Logger } from 'pino';

/**
 * The gateway's view of trust: the operator's trust policy and the CRLs it
 * has seen (from --crl files, which it watches, and from the directory).
 * A newly accepted CRL emits 'crl', so connections of identities it revokes
 * can be dropped at once. The gateway validates endpoints to decide who may
 * connect; it never decides for an endpoint what that endpoint trusts.
 */
export class GatewayTrust extends EventEmitter {
  readonly policy: TrustPolicy;
  readonly revocationCheck: boolean;
  readonly #rev = new RevocationState();
  readonly #store: GatewayStore;
  readonly #log: Logger;
  readonly #now: () => number;
  readonly #watched: string[] = [];

  constructor(o: { policy: TrustPolicy; revocationCheck: boolean; store: GatewayStore; log: Logger; now?: () => number }) {
    super();
    this.policy = o.policy;
    this.revocationCheck = o.revocationCheck;
    this.#store = o.store;
    this.#log = o.log;
    this.#now = o.now ?? Date.now;
  }

  /** Loads the CRLs the directory holds, then the operator's files (refusing a bad file loudly). */
  async load(crlFiles: string[]): Promise<void> {
    for (const c of await this.#store.listCrls()) {
      try {
        this.#rev.addCrl(c.pem, this.policy);
      } catch (e) {
        this.#log.warn({ anchor: c.anchor, reason: e instanceof VerificationFailure ? e.reason : (e as Error).message }, 'stored CRL ignored');
      }
    }
    for (const f of crlFiles) {
      const r = await this.addCrl(readFileSync(f, 'utf8')).catch((e: unknown) => {
        throw new EvsealError('ERR_CERT_REJECTED', `CRL ${f} refused: ${e instanceof EvsealError ? e.message : (e as Error).message}`);
      });
      this.#log.info({ file: f, anchor: r.anchor, crlNumber: r.crlNumber.toString() }, 'CRL loaded');
    }
  }

  /** Re-reads --crl files when they change (polling, so it works on every filesystem). */
  watch(crlFiles: string[], intervalMs = 1000): void {
    for (const f of crlFiles) {
      this.#watched.push(f);
      watchFile(f, { interval: intervalMs, persistent: false }, () => {
        let pem: string;
        try {
          pem = readFileSync(f, 'utf8');
        } catch {
          return;
        }
        this.addCrl(pem).then(
          (r) => this.#log.info({ file: f, anchor: r.anchor, crlNumber: r.crlNumber.toString() }, 'CRL reloaded'),
          (e: unknown) => this.#log.warn({ file: f, err: (e as Error).message }, 'changed CRL refused'),
        );
      });
    }
  }

  unwatch(): void {
    for (const f of this.#watched.splice(0)) unwatchFile(f);
  }

  /**
   * Verifies and keeps a CRL (rollback refused); a newer one is stored for
   * distribution and announced with 'crl'. Re-adding the held CRL is a no-op.
   */
  async addCrl(pem: string): Promise<{ anchor: string; crlNumber: bigint; fresh: boolean }> {
    let r;
    try {
      const held = new Map(this.policy.anchors.map((a) => [a.name, this.#rev.crlNumberFor(a.name)]));
      r = this.#rev.addCrl(pem, this.policy);
      // Re-adding the CRL already held changes nothing (a lower number was refused above).
      const fresh = held.get(r.anchor) !== r.crlNumber;
      if (fresh) {
        await this.#store.putCrl(r.anchor, r.crlNumber, pem);
        this.emit('crl', r.anchor);
      }
      return { anchor: r.anchor, crlNumber: r.crlNumber, fresh };
    } catch (e) {
      if (e instanceof VerificationFailure) throw new EvsealError('ERR_CERT_REJECTED', `CRL refused: ${e.reason}`);
      throw e;
    }
  }

  /** Chain, trust policy, role scope and (unless waived) CRL; throws VerificationFailure. */
  validate(chain: Uint8Array[]): ValidatedIdentity {
    return validateChain(chain, { policy: this.policy, revocation: this.revocationCheck ? this.#rev : 'skip', now: new Date(this.#now()) });
  }

  get revocation(): RevocationState | 'skip' {
    return this.revocationCheck ? this.#rev : 'skip';
  }
}
