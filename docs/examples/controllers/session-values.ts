// src/session-values.ts: every key of the session and its type, declared once.
export interface Item {
  sku: string;
  qty: number;
}

declare module 'keepsake' {
  interface SessionValues {
    name: string;
    basket: Item[];
    theme: 'light' | 'dark';
  }
  interface FlashValues {
    notice: string;
  }
}
