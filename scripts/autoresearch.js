#!/usr/bin/env node
// The `autoresearch` command. It runs the CLI compiled in build/ when that build was made from the
// sources as they are now (rebuilding it first when they changed: see build.js), so a command starts
// in a fraction of a second; where no build can be made it compiles the sources on the fly with tsx.
const { freshCli } = require('./build.js');
const compiled = freshCli();
if (compiled) {
  require(compiled);
} else {
  // tsx's loader, as `node --import tsx` runs it: hooks for require() and for the verbs' import().
  import('tsx').then(() => require('./cli.ts'));
}
