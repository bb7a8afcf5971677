/**
 * The panel's Train section: start, cancel (after a confirmation) and resume a cancelled job;
 * the job's phase, elapsed and remaining time and a progress bar weighed by the stages' expected
 * durations; the loss plot; the last lines of the log, collapsible, with a link to the full log.
 */
import { useState, type CSSProperties } from 'react';
import type { Job, JobProgress, LogLine } from '../api/client.js';
import { LossPlot, type LossPoint } from './LossPlot.js';
import { Button, SECTION } from './ui.js';

const S: Record<string, CSSProperties> = {
  ...SECTION,
  log: {
    fontFamily: 'monospace',
    fontSize: 11,
    whiteSpace: 'pre-wrap',
    color: '#b8c2d8',
  },
  link: { color: '#5acce6', fontSize: 12 },
  toggle: {
    background: 'none',
    border: 'none',
    color: '#5acce6',
    cursor: 'pointer',
    padding: 0,
    fontSize: 12,
  },
};

/** Lines of the log the panel shows (the full log is one click away). */
export const LOG_LINES_SHOWN = 5;

export function fmtSeconds(s: number): string {
  if (s < 90) return `${Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 90) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

export const ACTIVE = (j: Job) => j.status === 'queued' || j.status === 'running';

export function JobSection(props: {
  job?: Job;
  progress?: JobProgress;
  losses: LossPoint[];
  log: LogLine[];
  canStart: boolean;
  busy: boolean;
  start(): void;
  cancel(): void;
  resume(): void;
}) {
  const { job, progress, losses, log } = props;
  const [asking, setAsking] = useState(false);
  const [logOpen, setLogOpen] = useState(true);
  const running = !!job && ACTIVE(job);
  const phase =
    job?.status === 'succeeded'
      ? 'published'
      : job?.status === 'running'
        ? (progress?.phase ?? 'starting')
        : job?.status;
  return (
    <div style={S.section}>
      <div style={S.label}>Train</div>
      <div style={S.row}>
        <Button
          testId="oneshot-train-start"
          onClick={props.start}
          disabled={props.busy || running || !props.canStart}
        >
          Start training
        </Button>
        {job?.status === 'cancelled' ? (
          <Button testId="oneshot-train-resume" onClick={props.resume} disabled={props.busy}>
            Resume training
          </Button>
        ) : (
          <Button
            testId="oneshot-train-cancel"
            onClick={() => setAsking(true)}
            disabled={!running || asking}
          >
            Cancel training
          </Button>
        )}
      </div>
      {asking && running && (
        <div data-testid="oneshot-train-cancel-ask" role="alertdialog" style={S.ask}>
          <div>Stop this training? It keeps its checkpoint: you can resume it later.</div>
          <div style={S.row}>
            <Button
              testId="oneshot-train-cancel-confirm"
              onClick={() => {
                setAsking(false);
                props.cancel();
              }}
            >
              Stop training
            </Button>
            <Button testId="oneshot-train-cancel-keep" onClick={() => setAsking(false)}>
              Keep training
            </Button>
          </div>
        </div>
      )}
      {job && (
        <div style={S.box} data-testid="oneshot-job" data-job-id={job.id}>
          <div>
            Job:{' '}
            <strong data-testid="oneshot-job-status" data-status={job.status} data-phase={phase}>
              {phase}
            </strong>
            {progress && job.status === 'running' && progress.total ? (
              <span style={S.small}>
                {' '}
                — step {progress.step}/{progress.total}
                {progress.loss !== undefined ? `, loss ${progress.loss.toPrecision(3)}` : ''}
              </span>
            ) : null}
          </div>
          {running && (
            <>
              <div style={S.small} data-testid="oneshot-job-time">
                {progress?.elapsedSeconds !== undefined
                  ? `${fmtSeconds(progress.elapsedSeconds)} elapsed`
                  : 'starting'}
                {progress?.etaSeconds !== undefined
                  ? ` · about ${fmtSeconds(progress.etaSeconds)} left`
                  : ' · estimating the time left'}
              </div>
              <progress
                data-testid="oneshot-job-progress"
                style={{ width: '100%' }}
                max={1}
                value={progress?.fraction}
              />
            </>
          )}
          {job.reason && <div style={S.small}>{job.reason}</div>}
          <LossPlot points={losses} />
          {log.length > 0 && (
            <div>
              <div style={{ display: 'flex', gap: 8, alignItems: 'baseline' }}>
                <button
                  type="button"
                  data-testid="oneshot-job-log-toggle"
                  style={S.toggle}
                  onClick={() => setLogOpen((o) => !o)}
                >
                  {logOpen ? '▾ Hide log' : '▸ Show log'}
                </button>
                <a
                  data-testid="oneshot-job-log-full"
                  style={S.link}
                  href={`/api/jobs/${encodeURIComponent(job.id)}/log?format=text`}
                  target="_blank"
                  rel="noreferrer"
                >
                  Full log
                </a>
              </div>
              {logOpen && (
                <div data-testid="oneshot-job-log" style={S.log}>
                  {log.slice(-LOG_LINES_SHOWN).map((l) => (
                    <div key={l.n}>{l.line}</div>
                  ))}
                </div>
              )}
            </div>
          )}
        </div>
      )}
    </div>
  );
}
