import { b64u, fromB64u } from '../core/base64url.js';
import { encodeCanonical, parseCanonical, type Shape } from '../core/canonical-json.js';
import { EvsealError } from '../core/errors.js';

/**
 * Session framing and the service-tool command language
 * (docs/service-tool.md). Shared by `evseal tool` and the charger.
 *
 * A session message travels through the gateway as the `body` of a
 * `format: "session"` message. The body is one canonical JSON frame:
 *
 *   {"v":1,"t":"init","m":"<the first message text, docs/protocol.md §13.3>"}
 *   {"v":1,"t":"msg","s":"<session handle>","m":"<b64u Double Ratchet message>"}
 *
 * The handle is `b64u(SHA-256(initiator leaf)).b64u(session id)`, the same
 * string on both sides (src/keystore/sessions.ts). It only lets the receiver
 * find the session; it is not a credential. A receiver checks that the
 * session it names belongs to the gateway-authenticated sender, and the
 * ratchet authenticates every message under AD = (both certificate hashes,
 * session id), so a frame that names another peer's session cannot inject.
 */

export const FRAME_VERSION = 1;
/** Largest frame accepted (characters): a first message with X-Wing, an OTK and a two-certificate chain is ~6 kB. */
export const MAX_FRAME_CHARS = 256 * 1024;
/** Largest command or result payload (bytes). */
export const MAX_PAYLOAD_BYTES = 64 * 1024;

const HANDLE_RE = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{22}$/;

const INIT_SHAPE: Shape = [
  ['v', 'int'],
  ['t', 'string'],
  ['m', 'string'],
];
const MSG_SHAPE: Shape = [
  ['v', 'int'],
  ['t', 'string'],
  ['s', 'string'],
  ['m', 'string'],
];

export type SessionFrame = { t: 'init'; first: string } | { t: 'msg'; handle: string; message: Uint8Array };

export function isSessionHandle(s: unknown): s is string {
  return typeof s === 'string' && HANDLE_RE.test(s);
}

export function encodeInitFrame(firstMessage: string): string {
  return encodeCanonical({ v: FRAME_VERSION, t: 'init', m: firstMessage }, INIT_SHAPE);
}

export function encodeMsgFrame(handle: string, message: Uint8Array): string {
  if (!isSessionHandle(handle)) throw new EvsealError('ERR_USAGE', 'not a session handle');
  return encodeCanonical({ v: FRAME_VERSION, t: 'msg', s: handle, m: b64u(message) }, MSG_SHAPE);
}

/** Strict parse of a session frame: canonical JSON of exactly one of the two shapes. Throws ERR_INVALID_INPUT. */
export function parseSessionFrame(body: string): SessionFrame {
  if (typeof body !== 'string' || body.length > MAX_FRAME_CHARS) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: too large');
  let t: unknown;
  try {
    t = (JSON.parse(body) as { t?: unknown })?.t;
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'session frame: not JSON');
  }
  if (t === 'init') {
    const o = parseCanonical(body, INIT_SHAPE, 'session frame');
    if (o.v !== FRAME_VERSION) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: unsupported version');
    if ((o.m as string).length === 0) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: empty first message');
    return { t: 'init', first: o.m as string };
  }
  if (t === 'msg') {
    const o = parseCanonical(body, MSG_SHAPE, 'session frame');
    if (o.v !== FRAME_VERSION) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: unsupported version');
    if (!isSessionHandle(o.s)) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: bad session handle');
    const message = fromB64u(o.m, 'session frame m');
    if (message.length === 0) throw new EvsealError('ERR_INVALID_INPUT', 'session frame: empty message');
    return { t: 'msg', handle: o.s, message };
  }
  throw new EvsealError('ERR_INVALID_INPUT', 'session frame: unknown type');
}

// ---------------------------------------------------------------------------
// Commands (inside the encrypted payloads)

export const TOOL_COMMANDS = ['get-diagnostics', 'get-config', 'set-config', 'reset', 'unlock-connector'] as const;
export type ToolCommandName = (typeof TOOL_COMMANDS)[number];

export type ToolCommand =
  | { cmd: 'get-diagnostics' }
  | { cmd: 'get-config'; keys?: string[] }
  | { cmd: 'set-config'; key: string; value: string }
  | { cmd: 'reset'; type?: 'Soft' | 'Hard' }
  | { cmd: 'unlock-connector'; connector: number };

/** A configuration key: OCPP 1.6 CiString50 restricted to a safe alphabet. */
export const CONFIG_KEY_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,49}$/;
/** OCPP 1.6 ChangeConfiguration value: CiString500. */
export const MAX_CONFIG_VALUE = 500;
export const MAX_CONNECTOR = 99;
const MAX_GET_KEYS = 50;

const COMMAND_SHAPES: Record<ToolCommandName, Shape> = {
  'get-diagnostics': [['cmd', 'string']],
  'get-config': [
    ['cmd', 'string'],
    ['keys', 'string[]', true],
  ],
  'set-config': [
    ['cmd', 'string'],
    ['key', 'string'],
    ['value', 'string'],
  ],
  reset: [
    ['cmd', 'string'],
    ['type', 'string', true],
  ],
  'unlock-connector': [
    ['cmd', 'string'],
    ['connector', 'int'],
  ],
};

const isCommandName = (x: unknown): x is ToolCommandName => typeof x === 'string' && (TOOL_COMMANDS as readonly string[]).includes(x);

/** Checks the values of a command (its shape is checked by the caller). Throws ERR_INVALID_INPUT. */
function checkCommand(c: ToolCommand): ToolCommand {
  const bad = (why: string): never => {
    throw new EvsealError('ERR_INVALID_INPUT', `command ${c.cmd}: ${why}`);
  };
  switch (c.cmd) {
    case 'get-config':
      if (c.keys !== undefined) {
        if (c.keys.length === 0 || c.keys.length > MAX_GET_KEYS) bad(`keys: 1 to ${MAX_GET_KEYS} entries`);
        if (!c.keys.every((k) => CONFIG_KEY_RE.test(k))) bad('keys: not a configuration key');
        if (new Set(c.keys).size !== c.keys.length) bad('keys: duplicates');
      }
      break;
    case 'set-config':
      if (!CONFIG_KEY_RE.test(c.key)) bad('key: not a configuration key');
      if ([...c.value].length > MAX_CONFIG_VALUE) bad(`value: longer than ${MAX_CONFIG_VALUE} characters`);
      if (/[\u0000-\u001f\u007f]/.test(c.value)) bad('value: control characters');
      break;
    case 'reset':
      if (c.type !== undefined && c.type !== 'Soft' && c.type !== 'Hard') bad('type: Soft or Hard');
      break;
    case 'unlock-connector':
      if (c.connector < 1 || c.connector > MAX_CONNECTOR) bad(`connector: 1 to ${MAX_CONNECTOR}`);
      break;
    case 'get-diagnostics':
      break;
  }
  return c;
}

export function encodeCommand(c: ToolCommand): Uint8Array {
  if (!isCommandName(c.cmd)) throw new EvsealError('ERR_USAGE', `unknown command ${String(c.cmd)}`);
  checkCommand(c);
  return new TextEncoder().encode(encodeCanonical(c as unknown as Record<string, unknown>, COMMAND_SHAPES[c.cmd]));
}

/** Strict parse of a decrypted command: canonical JSON, a known command, exactly its members, valid values. Throws ERR_INVALID_INPUT. */
export function parseCommand(bytes: Uint8Array): ToolCommand {
  if (bytes.length > MAX_PAYLOAD_BYTES) throw new EvsealError('ERR_INVALID_INPUT', 'command too large');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'command: not UTF-8');
  }
  let cmd: unknown;
  try {
    cmd = (JSON.parse(text) as { cmd?: unknown })?.cmd;
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'command: not JSON');
  }
  if (!isCommandName(cmd)) throw new EvsealError('ERR_INVALID_INPUT', 'command: unknown command');
  return checkCommand(parseCanonical(text, COMMAND_SHAPES[cmd], `command ${cmd}`) as unknown as ToolCommand);
}

/**
 * A command's answer. `error` is a stable code: ERR_INVALID_INPUT (malformed
 * or unknown command, bad argument), ERR_NOT_FOUND (unknown configuration
 * key or connector), ERR_POLICY_DENIED (a read-only key).
 */
export type CommandResult = { ok: true; result: unknown } | { ok: false; error: string; message?: string };

export function encodeResult(r: CommandResult): Uint8Array {
  const text = r.ok ? JSON.stringify({ ok: true, result: r.result ?? null }) : JSON.stringify({ ok: false, error: r.error, ...(r.message !== undefined ? { message: r.message } : {}) });
  return new TextEncoder().encode(text);
}

export function parseResult(bytes: Uint8Array): CommandResult {
  if (bytes.length > MAX_PAYLOAD_BYTES) throw new EvsealError('ERR_INVALID_INPUT', 'result too large');
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw new EvsealError('ERR_INVALID_INPUT', 'result: not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new EvsealError('ERR_INVALID_INPUT', 'result: not an object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o).join(',');
  if (o.ok === true && keys === 'ok,result') return { ok: true, result: o.result };
  if (o.ok === false && (keys === 'ok,error' || keys === 'ok,error,message') && typeof o.error === 'string' && (o.message === undefined || typeof o.message === 'string')) {
    return { ok: false, error: o.error, ...(o.message !== undefined ? { message: o.message as string } : {}) };
  }
  throw new EvsealError('ERR_INVALID_INPUT', 'result: expected {ok:true,result} or {ok:false,error[,message]}');
}
