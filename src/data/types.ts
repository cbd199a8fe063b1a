// The shapes data takes on its way from a file to a training batch.

export interface ChatMessage {
  role: "system" | "user" | "assistant";
  content: string;
}

/** One training or evaluation example, whatever its file shape, as a conversation. */
export interface Sample {
  messages: ChatMessage[];
  /** The exact final answer when the source has one (e.g. "3/8"), for accuracy checks. */
  answer?: string;
}

/** A tokenized sample: ids and per-token loss mask (true = counts in the loss). */
export interface Encoded {
  ids: number[];
  lossMask: boolean[];
  truncated: boolean;
}
