// TLS material for security profiles 2 and 3: a test CA, a server
// certificate for 127.0.0.1, and client certificates named after stations.
// Made with @peculiar/x509 (as evseal's own CA code does), PEM key + cert.
import { createPrivateKey, webcrypto } from 'node:crypto';
import { loadX509 } from '../../../src/core/x509/provider.js';
import { certFingerprint, pemToDer } from '../../../src/core/x509/pem.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 86400_000;

export interface Pem {
  key: string;
  cert: string;
}

async function keyPem(k: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', k as webcrypto.CryptoKey));
  return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
}

export interface TlsCa {
  ca: string;
  issue(cn: string, usage: 'server' | 'client'): Promise<Pem>;
}

export async function tlsCa(name: string): Promise<TlsCa> {
  const x = await loadX509();
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
  const now = Date.now();
  const ca = await x.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: `CN=${name}`,
    notBefore: new Date(now - DAY),
    notAfter: new Date(now + 30 * DAY),
    keys,
    signingAlgorithm: ALG,
    extensions: [new x.BasicConstraintsExtension(true, undefined, true), new x.KeyUsagesExtension(x.KeyUsageFlags.keyCertSign | x.KeyUsageFlags.cRLSign, true)],
  });
  let serial = 1;
  return {
    ca: ca.toString('pem'),
    async issue(cn, usage) {
      const k = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as unknown as CryptoKeyPair;
      const cert = await x.X509CertificateGenerator.create({
        serialNumber: (++serial).toString(16).padStart(2, '0'),
        subject: `CN=${cn}`,
        issuer: ca.subject,
        notBefore: new Date(now - DAY),
        notAfter: new Date(now + 30 * DAY),
        publicKey: k.publicKey,
        signingKey: keys.privateKey,
        signingAlgorithm: ALG,
        extensions: [
          new x.BasicConstraintsExtension(false),
          new x.KeyUsagesExtension(x.KeyUsageFlags.digitalSignature, true),
          new x.ExtendedKeyUsageExtension([usage === 'server' ? x.ExtendedKeyUsage.serverAuth : x.ExtendedKeyUsage.clientAuth]),
          ...(usage === 'server' ? [new x.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }])] : []),
        ],
      });
      return { key: await keyPem(k.privateKey), cert: cert.toString('pem') };
    },
  };
}

export const fingerprintOf = (certPem: string) => certFingerprint(pemToDer(certPem, 'CERTIFICATE'));
