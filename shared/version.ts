/** Library version recorded in checkpoints and reports (kept equal to package.json's). */
export const LIBRARY_VERSION = '0.1.0';
