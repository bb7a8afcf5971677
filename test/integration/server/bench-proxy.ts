/**
 * Measures the DICOMweb proxy's overhead against talking to Orthanc directly (not part of the test
 * suite): STOW-RS of a 181-slice 184×217 MR series (~14 MB), series metadata, and all pixel data.
 *
 *   npx tsx test/integration/server/bench-proxy.ts [--rounds 3]
 */
import { startTestStack, TEST_API_TOKEN } from '../../helpers/server.js';
import { makeTinySeries, stowBody } from './dicom-data.js';

const roundsArg = process.argv.indexOf('--rounds');
const rounds = roundsArg >= 0 ? Number(process.argv[roundsArg + 1]) : 3;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? NaN;
}

async function main(): Promise<void> {
  const stack = await startTestStack();
  const auth =
    'Basic ' + Buffer.from(`${stack.pacs.username}:${stack.pacs.password}`).toString('base64');
  const roots = {
    direct: { root: stack.pacs.dicomWebRoot, headers: { Authorization: auth } },
    proxy: {
      root: `${stack.url}/dicom-web`,
      headers: { Authorization: `Bearer ${TEST_API_TOKEN}` } as Record<string, string>,
    },
  };
  const times: Record<string, number[]> = {};
  const add = (k: string, ms: number): void => {
    (times[k] ??= []).push(ms);
  };
  try {
    for (let r = 0; r < rounds; r++) {
      for (const [name, { root, headers }] of Object.entries(roots)) {
        const series = makeTinySeries(181, 217, 184, `bench ${name} ${r}`);
        const { body, contentType } = stowBody(series.files);
        let t = performance.now();
        const stow = await fetch(`${root}/studies`, {
          method: 'POST',
          headers: { ...headers, 'Content-Type': contentType },
          body,
        });
        await stow.arrayBuffer();
        if (!stow.ok) throw new Error(`STOW ${name}: HTTP ${stow.status}`);
        add(`${name} STOW ${(body.length / 1e6).toFixed(1)} MB`, performance.now() - t);

        t = performance.now();
        const meta = (await (
          await fetch(`${root}/studies/${series.studyUID}/series/${series.seriesUID}/metadata`, {
            headers,
          })
        ).json()) as unknown[];
        add(`${name} series metadata (${meta.length} instances)`, performance.now() - t);

        t = performance.now();
        let bytes = 0;
        for (const sop of series.sopUIDs) {
          const res = await fetch(
            `${root}/studies/${series.studyUID}/series/${series.seriesUID}/instances/${sop}/frames/1`,
            {
              headers: { ...headers, Accept: 'multipart/related; type="application/octet-stream"' },
            },
          );
          bytes += (await res.arrayBuffer()).byteLength;
        }
        add(
          `${name} 181 frames one by one (${(bytes / 1e6).toFixed(1)} MB)`,
          performance.now() - t,
        );
      }
    }
    for (const [k, v] of Object.entries(times)) {
      console.log(
        `${k.padEnd(48)} median ${median(v).toFixed(0)} ms  (${v.map((x) => x.toFixed(0)).join(', ')})`,
      );
    }
  } finally {
    await stack.stop();
  }
}

void main();
