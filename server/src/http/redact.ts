/**
 * What an error message may show a client: never the server's internal addresses (the PACS's
 * URL) or file paths (install folder, data folders, temporary files). The full message stays in
 * the server log; the client gets the same words with those parts replaced.
 */
const replacements = new Map<string, string>();

/** Replace every occurrence of `text` (a URL origin or a folder) by `by` in client messages. */
export function addRedaction(text: string, by: string): void {
  if (text.length >= 4) replacements.set(text, by);
}

// Absolute paths under the usual roots of a Unix machine.
const PATH_PATTERN =
  /(?<![\w.:/-])\/(?:tmp|home|root|usr|var|etc|srv|opt|work|proc|mnt|run|data|media|snap|nix)(?:\/[^\s'"`(),;]*)?/g;

/** The message with internal URLs and file paths replaced. */
export function redact(message: string): string {
  let out = message;
  // Longest first, so that a folder inside another is replaced whole.
  for (const [text, by] of [...replacements].sort((a, b) => b[0].length - a[0].length)) {
    out = out.split(text).join(by);
  }
  return out.replace(PATH_PATTERN, '<server path>');
}
