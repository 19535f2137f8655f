// src/session-values.ts: the shape of your session, declared once for the whole app.
declare module 'keepsake' {
  interface SessionValues {
    name: string;
    visits: number;
  }
}

export {}; // keeps this file a module: the block above then adds to keepsake's types instead of replacing them
