// Where the command line writes: stdout for results, stderr for progress and errors. Tests run
// commands in-process with their own Io and read what was written.

/** The little of a terminal stream the CLI needs; process.stdout and process.stderr fit. */
export interface Stream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface Io {
  stdout: Stream;
  stderr: Stream;
  /** Whether the user can answer questions (the `run` menu). */
  interactive: boolean;
  /** Reads a line from the user (the `run` menu); null at end of input. */
  ask?: (prompt: string) => Promise<string | null>;
}

/** Writes one line (adds the newline). */
export const println = (s: Stream, line = "") => s.write(`${line}\n`);
