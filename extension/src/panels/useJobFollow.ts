/**
 * Following one training job at a time: its status, progress and loss points (the history kept
 * by the server, merged with live server-sent events) and the tail of its log.
 */
import { useCallback, useRef, useState } from 'react';
import type { ApiClient, Job, JobProgress, LogLine } from '../api/client.js';
import type { LossPoint } from './LossPlot.js';

/** Log lines kept in memory (the panel shows the last few; the full log is a link). */
const LOG_KEPT = 50;

export function useJobFollow(
  api: ApiClient,
  onEnd: (job: Job) => Promise<void> | void,
  onError: (message: string) => void,
) {
  const [job, setJob] = useState<Job>();
  const [progress, setProgress] = useState<JobProgress>();
  const [losses, setLosses] = useState<LossPoint[]>([]);
  const [log, setLog] = useState<LogLine[]>([]);
  const stop = useRef<(() => void) | undefined>(undefined);
  // The latest callbacks (the follow function itself stays the same across renders).
  const onEndRef = useRef(onEnd);
  onEndRef.current = onEnd;
  const onErrorRef = useRef(onError);
  onErrorRef.current = onError;
  // The job shown, for timers (a dependency would restart them at every event).
  const jobRef = useRef<Job | undefined>(undefined);
  jobRef.current = job;

  const follow = useCallback(
    (j: Job) => {
      setJob(j);
      setProgress(j.progress ?? undefined);
      setLosses([]);
      setLog([]);
      api
        .jobLog(j.id)
        .then((l) => setLog(l.slice(-LOG_KEPT)))
        .catch(() => undefined);
      api
        .jobProgress(j.id)
        .then((rows) => {
          const past = rows
            .filter((p) => typeof p.loss === 'number' && p.phase && p.step !== undefined)
            .map((p) => ({
              stage: p.phase as string,
              step: p.step as number,
              loss: p.loss as number,
            }));
          setLosses((live) => [
            ...past.filter((x) => !live.some((y) => y.stage === x.stage && y.step === x.step)),
            ...live,
          ]);
        })
        .catch(() => undefined);
      return api.followJob(j.id, {
        status: (s) => setJob(s),
        progress: (p) => {
          setProgress(p);
          if (typeof p.loss === 'number' && p.phase && p.step !== undefined) {
            const point = { stage: p.phase, step: p.step, loss: p.loss };
            setLosses((ls) =>
              ls.some((x) => x.stage === point.stage && x.step === point.step)
                ? ls
                : [...ls, point],
            );
          }
        },
        log: (l) => setLog((ls) => [...ls.slice(-(LOG_KEPT - 1)), l]),
        end: () => {
          void api
            .job(j.id)
            .then(async (done) => {
              setJob(done);
              await onEndRef.current(done);
            })
            .catch((e: unknown) => onErrorRef.current(e instanceof Error ? e.message : String(e)));
        },
        error: (m) => onErrorRef.current(m),
      });
    },
    [api],
  );

  /** Follows `j` (or nothing) instead of the job followed so far. */
  const followOnly = useCallback(
    (j: Job | undefined) => {
      stop.current?.();
      stop.current = j ? follow(j) : undefined;
      if (!j) setJob(undefined);
    },
    [follow],
  );

  return { job, progress, losses, log, followOnly, jobRef };
}
