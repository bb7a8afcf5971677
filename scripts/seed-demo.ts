/**
 * Seeds the demo studies (atlas + synthetic subjects) into a running DICOMweb PACS.
 *
 *   RRL_PACS_URL=http://127.0.0.1:8042/dicom-web RRL_PACS_USER=… RRL_PACS_PASSWORD=… \
 *     npx tsx scripts/seed-demo.ts [--data-dir var] [--subjects 6]
 *
 * Idempotent: studies already in the PACS are not sent again; generated files are cached in
 * <data-dir>/demo/.
 */
import { DicomWebClient, PacsError } from '@rrl/server/pacs/dicomweb.js';
import { seedDemo } from '@rrl/server/demo/seed.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

async function main(): Promise<void> {
  const root = process.env.RRL_PACS_URL;
  if (!root) {
    console.error(
      'Set RRL_PACS_URL to the PACS DICOMweb root (e.g. http://127.0.0.1:8042/dicom-web), and ' +
        'RRL_PACS_USER / RRL_PACS_PASSWORD if it needs credentials.',
    );
    process.exit(2);
  }
  const subjectsArg = arg('subjects');
  const subjects = subjectsArg === undefined ? undefined : Number(subjectsArg);
  if (subjects !== undefined && !(Number.isInteger(subjects) && subjects >= 0)) {
    console.error(`--subjects expects a whole number ≥ 0, found "${subjectsArg}".`);
    process.exit(2);
  }
  const client = new DicomWebClient({
    root,
    username: process.env.RRL_PACS_USER,
    password: process.env.RRL_PACS_PASSWORD,
  });
  const t0 = Date.now();
  const res = await seedDemo({
    client,
    dataDir: arg('data-dir') ?? process.env.RRL_DATA_DIR ?? 'var',
    subjects,
    log: (m) => console.log(m),
  });
  console.log(
    `demo: atlas study ${res.atlas.studyUID} (SEG series ${res.atlas.segSeriesUID}), ` +
      `${res.subjects.length} synthetic subjects; ${res.stored.length} studies stored now; ` +
      `files in ${res.demoDir}; ${((Date.now() - t0) / 1000).toFixed(1)} s`,
  );
}

main().catch((e: unknown) => {
  console.error(e instanceof PacsError || e instanceof Error ? e.message : String(e));
  process.exit(1);
});
