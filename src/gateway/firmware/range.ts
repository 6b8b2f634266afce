/**
 * The one HTTP Range form a resuming downloader needs (RFC 9110 §14.1.2):
 * a single byte range `bytes=a-b`, `bytes=a-` or `bytes=-n`.
 *
 * - `undefined`: no usable Range header; the whole body is sent (200). This
 *   covers a missing header, another unit, a syntax error and a multi-range
 *   request, all of which RFC 9110 lets a server ignore.
 * - `'unsatisfiable'`: a well-formed range that selects nothing (416).
 * - otherwise the inclusive [start, end] span, clamped to the body.
 */
export type RangeAnswer = { start: number; end: number } | 'unsatisfiable' | undefined;

const SINGLE = /^bytes=[ \t]*(\d*)-(\d*)[ \t]*$/;

export function parseRange(header: string | undefined, total: number): RangeAnswer {
  if (header === undefined) return undefined;
  const m = SINGLE.exec(header);
  if (!m) return undefined;
  const [, a, b] = m as unknown as [string, string, string];
  if (a === '' && b === '') return undefined;
  // more than 15 digits cannot be a position in a file we serve: treat as past the end
  const num = (s: string): number => (s.length > 15 ? Number.MAX_SAFE_INTEGER : Number(s));
  if (a === '') {
    // suffix: the last n bytes
    const n = num(b);
    if (n === 0 || total === 0) return 'unsatisfiable';
    return { start: Math.max(0, total - n), end: total - 1 };
  }
  const start = num(a);
  const end = b === '' ? total - 1 : Math.min(num(b), total - 1);
  if (b !== '' && num(b) < start) return undefined; // invalid range-spec: ignored (RFC 9110 §14.1.1)
  if (start >= total) return 'unsatisfiable';
  return { start, end };
}
