/**
 * The evaluation report: per-subject scores → per-method summaries, the printed table and the
 * JSON written by `npm run eval -- --report FILE`.
 */

export const METHODS = ['a', 'b', 'c', 'd'] as const;
export type Method = (typeof METHODS)[number];

export const METHOD_NAMES: Record<Method, string> = {
  a: 'atlas labels copied, no registration',
  b: 'registration only (warped atlas labels; refined per volume when the plan has registrationRefine)',
  c: 'medical branch, no prompt',
  d: 'full pipeline (published model.onnx)',
};

export interface SubjectScores {
  id: string;
  dims: [number, number, number];
  spacing: [number, number, number];
  /** method → label name → Dice. */
  dice: Record<Method, Record<string, number>>;
  /** method → label name → HD95 in mm (null when undefined: a side is empty). */
  hd95: Record<Method, Record<string, number | null>>;
}

export interface Stat {
  mean: number;
  std: number;
}

export interface MethodSummary {
  name: string;
  perLabel: Record<string, Stat>;
  /** Mean ± std over subjects of each subject's mean Dice over labels. */
  mean: number;
  std: number;
  /** Mean HD95 (mm) over subjects and labels where it is defined. */
  hd95: number | null;
  /** HD95 values left out because a side was empty. */
  hd95Undefined: number;
}

export function meanStd(values: readonly number[]): Stat {
  if (values.length === 0) return { mean: NaN, std: NaN };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const v = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
  return { mean, std: Math.sqrt(v) };
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

export function summarizeMethods(
  subjects: readonly SubjectScores[],
  labelNames: readonly string[],
): Record<Method, MethodSummary> {
  const out = {} as Record<Method, MethodSummary>;
  for (const m of METHODS) {
    const perLabel: Record<string, Stat> = {};
    for (const name of labelNames) perLabel[name] = meanStd(subjects.map((s) => s.dice[m][name]!));
    const subjMeans = subjects.map(
      (s) => labelNames.reduce((a, n) => a + s.dice[m][n]!, 0) / labelNames.length,
    );
    const { mean, std } = meanStd(subjMeans);
    const hd: number[] = [];
    let undef = 0;
    for (const s of subjects)
      for (const n of labelNames) {
        const h = s.hd95[m][n];
        if (h === null || h === undefined || !Number.isFinite(h)) undef++;
        else hd.push(h);
      }
    out[m] = {
      name: METHOD_NAMES[m],
      perLabel,
      mean,
      std,
      hd95: hd.length ? meanStd(hd).mean : null,
      hd95Undefined: undef,
    };
  }
  return out;
}

const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '—');

/**
 * The printed table: one row per label (Dice mean ± std over subjects), then the mean Dice (mean ±
 * std over subjects of each subject's mean) and HD95; one column per method (a)–(d).
 */
/**
 * On how many subjects method `m`'s mean Dice over the labels is at least `than`'s (issue 19: the
 * published model should be no worse than registration alone on ≥ 95 % of subjects).
 */
export function notWorseCount(
  subjects: readonly SubjectScores[],
  labelNames: readonly string[],
  m: Method,
  than: Method,
): number {
  const mean = (s: SubjectScores, k: Method): number =>
    labelNames.reduce((a, n) => a + s.dice[k][n]!, 0) / labelNames.length;
  return subjects.filter((s) => mean(s, m) >= mean(s, than)).length;
}

export function formatTable(
  methods: Record<Method, MethodSummary>,
  labelNames: readonly string[],
  extra: {
    parameters: number;
    nodeMs: number;
    wasmMs: number | null;
    /** Subjects where (d) is no worse than (b), of how many. */
    dNotWorseThanB?: { count: number; of: number };
  },
): string {
  const pm = (x: Stat): string => `${f3(x.mean)} ± ${f3(x.std)}`;
  const head = ['Dice', ...METHODS.map((m) => `(${m})`)];
  const rows = [
    ...labelNames.map((n) => [n, ...METHODS.map((m) => pm(methods[m].perLabel[n]!))]),
    ['mean Dice', ...METHODS.map((m) => pm(methods[m]))],
    [
      'HD95 mm (mean)',
      ...METHODS.map((m) => (methods[m].hd95 === null ? '—' : methods[m].hd95!.toFixed(2))),
    ],
  ];
  const all = [head, ...rows];
  const w = head.map((_, c) => Math.max(...all.map((r) => r[c]!.length)));
  const line = (r: string[]): string =>
    r.map((v, c) => (c === 0 ? v.padEnd(w[c]!) : v.padStart(w[c]!))).join(' | ');
  const sep = w.map((x) => '-'.repeat(x)).join('-|-');
  return [
    ...METHODS.map((m) => `(${m}) ${METHOD_NAMES[m]}`),
    '',
    line(head),
    sep,
    ...rows.slice(0, -2).map(line),
    sep,
    ...rows.slice(-2).map(line),
    ...(extra.dNotWorseThanB
      ? [
          `(d) no worse than (b) on ${extra.dNotWorseThanB.count} of ${extra.dNotWorseThanB.of} subjects (mean Dice per subject)`,
        ]
      : []),
    '',
    `parameters (model.onnx): ${extra.parameters.toLocaleString('en-US')}`,
    `inference per volume (median, model.onnx): onnxruntime-node CPU ${extra.nodeMs.toFixed(0)} ms` +
      (extra.wasmMs === null ? '' : `; onnxruntime-web wasm (Node) ${extra.wasmMs.toFixed(0)} ms`),
  ].join('\n');
}
