import { SkiffError } from './errors.js';

/**
 * The one rule for code that arrives through the network: the server runs it only when the
 * operator started it with `--allow-code-upload` (`allowCodeUpload` in startServer). Code means
 * anything executed inside or by the server — a JS model module uploaded through the admin API
 * or left behind in the upload directory, a container command — as opposed to data such as an
 * ONNX graph, which is always accepted. Model files in the repository were put there by the
 * operator and are not "through the network".
 *
 * Call it wherever a network request would make the server run something, before anything is
 * written or started; `what` names the thing for the message ("an uploaded JS model").
 * Throws SkiffError('CODE_UPLOAD_FORBIDDEN') (403).
 */
export function assertCodeUploadAllowed(opts: { readonly allowCodeUpload?: boolean }, what: string): void {
  if (opts.allowCodeUpload !== true) {
    throw new SkiffError('CODE_UPLOAD_FORBIDDEN', `${what} is executable code; the server accepts it through the network only when started with --allow-code-upload`);
  }
}
