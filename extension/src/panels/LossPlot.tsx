/** An SVG line plot of the training loss over steps, one line per stage. */

export interface LossPoint {
  stage: string;
  step: number;
  loss: number;
}

const COLORS = ['#5acce6', '#e6a23c', '#8bc34a', '#e57373', '#ba68c8', '#ffd54f', '#4db6ac'];

export function LossPlot({ points }: { points: LossPoint[] }) {
  const W = 260;
  const H = 110;
  const pad = 4;
  const stages = [...new Set(points.map((p) => p.stage))];
  if (points.length === 0) return null;
  // Each stage gets its own slice of the x axis (its steps restart at 0).
  const byStage = stages.map((s) => points.filter((p) => p.stage === s));
  const totalSteps = byStage.reduce((n, ps) => n + Math.max(1, ps.length), 0);
  // Each stage is scaled to its own loss range (the stages' losses are of different kinds).
  let offset = 0;
  const lines = byStage.map((ps, k) => {
    const n = Math.max(1, ps.length);
    const x0 = offset;
    offset += n;
    const finite = ps.filter((p) => Number.isFinite(p.loss));
    const lo = Math.min(...finite.map((p) => p.loss));
    const hi = Math.max(...finite.map((p) => p.loss));
    const span = hi - lo || 1;
    const d = finite
      .map((p, i) => {
        const x = pad + ((x0 + i) / Math.max(1, totalSteps - 1)) * (W - 2 * pad);
        const y = pad + (1 - (p.loss - lo) / span) * (H - 2 * pad);
        return `${i === 0 ? 'M' : 'L'}${x.toFixed(1)},${y.toFixed(1)}`;
      })
      .join(' ');
    const last = finite[finite.length - 1]?.loss;
    return { stage: stages[k], d, color: COLORS[k % COLORS.length], last };
  });
  return (
    <div data-testid="oneshot-loss-plot" data-points={points.length}>
      <svg
        width="100%"
        viewBox={`0 0 ${W} ${H}`}
        style={{ background: '#0a0e18', borderRadius: 4 }}
        role="img"
        aria-label="Training loss over steps"
      >
        {lines.map((l) => (
          <path key={l.stage} d={l.d} fill="none" stroke={l.color} strokeWidth={1.5} />
        ))}
      </svg>
      <div style={{ fontSize: 11, color: '#9aa4b8' }}>
        loss per stage (each scaled to its range; last value):{' '}
        {lines.map((l) => (
          <span key={l.stage} style={{ color: l.color, marginRight: 6 }}>
            {l.stage} {l.last !== undefined ? l.last.toPrecision(3) : ''}
          </span>
        ))}
      </div>
    </div>
  );
}
