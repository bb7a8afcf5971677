/** STOW-RS of Part-10 objects from the browser (through the companion server's DICOMweb proxy). */

export class StowError extends Error {
  readonly status?: number;
  constructor(message: string, status?: number) {
    super(message);
    this.name = 'StowError';
    this.status = status;
  }
}

/** multipart/related; type="application/dicom" body. */
export function buildMultipart(parts: ArrayBuffer[], boundary: string): Blob {
  const chunks: BlobPart[] = [];
  for (const p of parts) {
    chunks.push(`--${boundary}\r\nContent-Type: application/dicom\r\n\r\n`);
    chunks.push(new Uint8Array(p));
    chunks.push('\r\n');
  }
  chunks.push(`--${boundary}--\r\n`);
  return new Blob(chunks);
}

interface DicomJsonAttr {
  Value?: unknown[];
}

/**
 * Stores the objects with STOW-RS at `${dicomWebRoot}/studies`. Resolves when the PACS accepted
 * every object; otherwise throws StowError with a message saying what happened and what to do.
 */
export async function stowInstances(
  dicomWebRoot: string,
  parts: ArrayBuffer[],
  fetchImpl: typeof fetch = fetch,
): Promise<void> {
  const boundary = `rrl-medsam-${Math.random().toString(16).slice(2)}${Date.now().toString(16)}`;
  const url = `${dicomWebRoot.replace(/\/$/, '')}/studies`;
  let res: Response;
  try {
    res = await fetchImpl(url, {
      method: 'POST',
      headers: {
        'content-type': `multipart/related; type="application/dicom"; boundary=${boundary}`,
        accept: 'application/dicom+json',
      },
      body: buildMultipart(parts, boundary),
    });
  } catch (e) {
    throw new StowError(
      `Could not reach the PACS through the viewer's server (${e instanceof Error ? e.message : String(e)}). The segmentation is still in the viewer: check the server and press Save again.`,
    );
  }
  const text = await res.text().catch(() => '');
  if (!res.ok) {
    const reason =
      res.status === 401 || res.status === 403
        ? 'the PACS refused the credentials of the viewer’s server'
        : res.status === 502 || res.status === 503 || res.status === 504
          ? 'the PACS is not reachable from the viewer’s server'
          : `the PACS answered HTTP ${res.status}${text ? `: ${text.slice(0, 200)}` : ''}`;
    throw new StowError(
      `Saving to the PACS failed: ${reason}. The segmentation is still in the viewer; fix the PACS connection and press Save again.`,
      res.status,
    );
  }
  // DICOM JSON: FailedSOPSequence (0008,1198) lists refused objects.
  try {
    const body = text ? (JSON.parse(text) as Record<string, DicomJsonAttr>) : {};
    const failed = body['00081198']?.Value;
    if (Array.isArray(failed) && failed.length > 0) {
      const reason = (failed[0] as Record<string, DicomJsonAttr>)['00081197']?.Value?.[0];
      throw new StowError(
        `The PACS refused the segmentation (failure reason ${String(reason ?? 'unknown')}). The segmentation is still in the viewer; press Save again or ask your PACS administrator.`,
        res.status,
      );
    }
  } catch (e) {
    if (e instanceof StowError) throw e;
    // Non-JSON success body: accepted.
  }
}
