import { createHash } from 'node:crypto';

/** A node's address as it appears in store keys (one record per node): a short hash, whatever the address's length or characters. */
export const nodeKey = (node: string): string => createHash('sha256').update(node).digest('base64url').slice(0, 16);
