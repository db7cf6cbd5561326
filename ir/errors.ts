// The one error type a user can cause. Shape rules throw it without a location; the DSL
// tracer adds the location of the call that made the instruction.

import type { Loc } from './types.js';

export class CompileError extends Error {
  constructor(
    message: string,
    /** How to fix it, in one sentence. */
    readonly hint?: string,
    public loc?: Loc,
    readonly severity: 'error' | 'warning' = 'error',
  ) {
    super(message);
    this.name = 'CompileError';
  }

  /** The user's calls that led to `loc`, innermost first (a helper function's callers). */
  via: readonly Loc[] = [];

  /** Further errors reported with this one (the other type errors of a model), each in full. */
  also: readonly CompileError[] = [];
  /** A last line after them (how many were left out). */
  trailer?: string;

  /** The call that led to the error (shown as `called from`), when it is not at loc. */
  withVia(loc: Loc | undefined): this {
    if (loc && this.via.length === 0 && (!this.loc || loc.line !== this.loc.line || loc.file !== this.loc.file)) this.via = [loc];
    return this;
  }

  withLoc(loc: Loc | undefined): this {
    if (!this.loc && loc) this.loc = loc;
    return this;
  }
}
