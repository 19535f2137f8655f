#!/usr/bin/env node
// The keepsake CLI runs in this process (no wrapper between a signal and the server).
import '../dist/bin/cli.js';
