// Training progress on stderr: a cli-progress bar on a terminal, fitted to its width, with the
// phase (loading, evaluating, training, saving) shown while no step moves; plain lines every N
// steps or seconds when stderr is not a TTY (CI logs, pipes), so logs stay readable; nothing when
// quiet. terminalEvents() turns the library's training events into this display.
import cliProgress from "cli-progress";
import type { Phase, TrainingEvents } from "../train/events.js";

/** The little of a stream that progress needs; process.stderr fits. */
export interface ProgressStream {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

export interface ProgressOptions {
  totalSteps: number;
  totalEpochs?: number;
  /** Shown before the bar or line, e.g. "train random". */
  label?: string;
  stream?: ProgressStream;
  quiet?: boolean;
  /** Force the bar (true) or plain lines (false); defaults to stream.isTTY. */
  tty?: boolean;
  /** Plain-line mode: print at every multiple of this step (default 10)… */
  everySteps?: number;
  /** …and whenever this many seconds passed since the last line (default 30). */
  everySeconds?: number;
  /** Weight of the past in the loss's moving average (default 0.9). */
  smoothing?: number;
  /** Where a resumed run starts, so rates and ETA count only this session's work. */
  startStep?: number;
  startTokens?: number;
  /** Clock in milliseconds (tests inject one). */
  now?: () => number;
}

export interface ProgressUpdate {
  /** Optimizer steps done so far. */
  step: number;
  epoch?: number;
  loss?: number;
  /** Training tokens processed so far (cumulative). */
  tokens?: number;
  lr?: number;
}

type ResolvedOptions = Required<Omit<ProgressOptions, "totalEpochs" | "label">> & Pick<ProgressOptions, "totalEpochs" | "label">;

/** "1:02:03" or "2:03". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  const [h, m, sec] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
  const pad = (n: number) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m)}:${pad(sec)}` : `${m}:${pad(sec)}`;
}

export class TrainingProgress {
  private readonly o: ResolvedOptions;
  private readonly startMs: number;
  private readonly bar: cliProgress.SingleBar | null = null;
  private lossAverage = 0;
  private lossCount = 0;
  private lastPrintMs: number;
  private lastPrintedStep = -1;
  private last: ProgressUpdate | null = null;
  private stopped = false;

  constructor(options: ProgressOptions) {
    const stream = options.stream ?? process.stderr;
    this.o = {
      stream,
      quiet: false,
      tty: stream.isTTY === true,
      everySteps: 10,
      everySeconds: 30,
      smoothing: 0.9,
      startStep: 0,
      startTokens: 0,
      now: Date.now,
      // Options given as undefined keep their defaults.
      ...Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)),
    } as ResolvedOptions;
    if (!(this.o.smoothing >= 0 && this.o.smoothing < 1)) throw new Error(`progress: smoothing must be in [0, 1), got ${this.o.smoothing}`);
    if (!(this.o.everySteps >= 1)) throw new Error(`progress: everySteps must be >= 1, got ${this.o.everySteps}`);
    this.startMs = this.o.now();
    this.lastPrintMs = this.startMs;
    if (!this.o.quiet && this.o.tty) {
      // The bar takes what the label, the counts and the stats leave of the line; a label too long
      // for the narrowest bar is shortened.
      const columns = stream.columns ?? 80;
      const counts = 2 * String(this.o.totalSteps).length + 3;
      const label = this.o.label ? `${shorten(this.o.label, columns - counts - STATS_WIDTH - 3 - MIN_BAR - 1)} ` : "";
      const barsize = Math.max(MIN_BAR, Math.min(30, columns - label.length - counts - STATS_WIDTH - 3));
      this.bar = new cliProgress.SingleBar(
        {
          stream: stream as NodeJS.WritableStream,
          format: `${label}[{bar}] {value}/{total} {stats}`,
          hideCursor: true,
          barsize,
          linewrap: false,
        },
        cliProgress.Presets.shades_classic,
      );
      this.bar.start(this.o.totalSteps, this.o.startStep, { stats: "" });
    }
  }

  /** Shows what the run is doing while no step moves (evaluating, saving, …). */
  phase(text: string): void {
    if (this.stopped || this.o.quiet) return;
    if (this.bar) this.bar.update({ stats: text.slice(0, STATS_WIDTH) });
    else if (text) this.o.stream.write(`${this.o.label ? `${this.o.label} ` : ""}${text}\n`);
  }

  /** The loss's exponential moving average, bias-corrected as Adam's moments are (null before any loss). */
  get smoothedLoss(): number | null {
    return this.lossCount === 0 ? null : this.lossAverage / (1 - this.o.smoothing ** this.lossCount);
  }

  update(u: ProgressUpdate): void {
    if (this.stopped || this.o.quiet) return;
    if (u.loss !== undefined) {
      this.lossAverage = this.o.smoothing * this.lossAverage + (1 - this.o.smoothing) * u.loss;
      this.lossCount++;
    }
    this.last = u;
    const nowMs = this.o.now();
    if (this.bar) {
      this.bar.update(u.step, { stats: this.stats(u, nowMs) });
      return;
    }
    const due = u.step % this.o.everySteps === 0 || nowMs - this.lastPrintMs >= this.o.everySeconds * 1000 || u.step >= this.o.totalSteps;
    if (due && u.step !== this.lastPrintedStep) this.printLine(u, nowMs);
  }

  /** Ends the display: the bar's final render, or the last line if it was not printed yet. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    if (this.bar) this.bar.stop();
    else if (!this.o.quiet && this.last && this.last.step !== this.lastPrintedStep) this.printLine(this.last, this.o.now());
  }

  private printLine(u: ProgressUpdate, nowMs: number): void {
    // "<label> step n/N | <stats>" in 80 columns.
    const steps = `step ${u.step}/${this.o.totalSteps} | `;
    const stats = this.stats(u, nowMs);
    const label = this.o.label ? `${shorten(this.o.label, 80 - steps.length - stats.length - 1)} ` : "";
    this.o.stream.write(`${label}${steps}${stats}\n`);
    this.lastPrintMs = nowMs;
    this.lastPrintedStep = u.step;
  }

  /**
   * "ep 1.20/5 loss 2.3457 lr 2.0e-4 1234 tok/s 0:12<1:48" in at most STATS_WIDTH characters:
   * when it is longer, the learning rate goes first, then tokens/s.
   */
  private stats(u: ProgressUpdate, nowMs: number): string {
    const elapsedS = (nowMs - this.startMs) / 1000;
    const loss = this.smoothedLoss;
    const done = u.step - this.o.startStep;
    const eta = done > 0 ? `<${formatDuration(((this.o.totalSteps - u.step) * elapsedS) / done)}` : "";
    const parts: { text: string; drop: number }[] = [
      ...(u.epoch === undefined
        ? []
        : [
            {
              text: `ep ${Number.isInteger(u.epoch) ? u.epoch : u.epoch.toFixed(2)}${this.o.totalEpochs ? `/${this.o.totalEpochs}` : ""}`,
              drop: 3,
            },
          ]),
      ...(loss === null ? [] : [{ text: `loss ${loss.toFixed(4)}`, drop: 4 }]),
      ...(u.lr === undefined ? [] : [{ text: `lr ${u.lr.toExponential(1)}`, drop: 1 }]),
      ...(u.tokens === undefined || elapsedS <= 0
        ? []
        : [{ text: `${Math.round((u.tokens - this.o.startTokens) / elapsedS)} tok/s`, drop: 2 }]),
      { text: `${formatDuration(elapsedS)}${eta}`, drop: 5 },
    ];
    const line = () => parts.map((p) => p.text).join(" ");
    while (line().length > STATS_WIDTH && parts.length > 1) {
      const first = parts.reduce((a, b) => (b.drop < a.drop ? b : a));
      parts.splice(parts.indexOf(first), 1);
    }
    return line().slice(0, STATS_WIDTH);
  }
}

/** The widest the stats after the bar get, so label + bar + counts + stats fit 80 columns. */
const STATS_WIDTH = 48;
const MIN_BAR = 6;

/** text in at most n characters: its end (where a run name's seed is) after an ellipsis when longer. */
const shorten = (text: string, n: number) => (text.length <= n ? text : `…${text.slice(-Math.max(1, n - 1))}`);

const PHASE_WORDS: Record<Phase, string> = {
  loading: "loading",
  preparing: "preparing the init:",
  evaluating: "evaluating",
  training: "training",
  generating: "generating answers",
  saving: "saving",
};

/**
 * The library's training events on a terminal: a line per phase before training starts, then
 * the progress bar (or plain lines), with evaluation and saving shown on it.
 */
export function terminalEvents(stream: ProgressStream, o: { quiet?: boolean; label?: string } = {}): TrainingEvents {
  let bar: TrainingProgress | null = null;
  const line = (text: string) => {
    if (!o.quiet) stream.write(`${text}\n`);
  };
  return {
    phase: (phase, detail) => {
      if (phase === "training") return bar?.phase("");
      const text = `${PHASE_WORDS[phase]}${detail ? ` ${detail}` : ""}…`;
      if (bar) bar.phase(text);
      else line(`${o.label ? `${o.label}: ` : ""}${text}`);
    },
    start: (s) => {
      bar?.stop();
      bar = new TrainingProgress({
        totalSteps: s.totalSteps,
        totalEpochs: s.totalEpochs,
        label: s.label,
        stream,
        quiet: o.quiet,
        startStep: s.startStep,
        startTokens: s.startTokens,
      });
    },
    step: (s) => bar?.update({ step: s.step, epoch: s.epoch, loss: s.loss, tokens: s.tokens, lr: s.lr }),
    end: () => {
      bar?.stop();
      bar = null;
    },
    // Notes say something the user may need to act on: shown even when quiet.
    note: (text) => stream.write(`svdlora: ${text}\n`),
  };
}
