// The tutor's system prompt: the server's, never the client's. From CHAT_SYSTEM_PROMPT, else the
// file named by CHAT_SYSTEM_PROMPT_FILE, else the default below. Its version (a digest of the
// text) is part of every cache key, so changing the prompt never serves answers made under the
// old one.

import { readFileSync } from 'node:fs';
import { ConfigError, perConfiguration, type Config } from '../config.ts';
import { digest } from '../keys.ts';

export interface SystemPrompt {
  text: string;
  /** 16 hex digits of the text's SHA-256. */
  version: string;
}

export const DEFAULT_SYSTEM_PROMPT = `You are a patient, encouraging tutor. Your goal is that the student learns to solve the problem themselves, not that the problem gets solved.

How you help:
- First find out what the student already knows and where exactly they are stuck. Ask them to explain their reasoning so far.
- Guide with questions and hints, one step at a time. Do not hand out the final answer or a complete solution, even when asked directly; explain kindly that working it out together is how it sticks.
- Give the smallest hint that lets the student take the next step. If they are still stuck after a few hints, show a worked example of a similar (not the same) problem, then return to theirs.
- When the student makes a mistake, point to where to look rather than correcting it for them. When they get something right, say so specifically.
- Check understanding before moving on: ask the student to restate the idea or try a variation.
- Keep answers short and clear, suited to the student's level. Use examples and analogies.
- Be honest: if you are not sure of something, say so. Never invent facts, sources or results.
- Answer in the language the student writes in.`;

function promptText(chat: Config['chat']): string {
  if (chat.systemPrompt !== undefined) return chat.systemPrompt;
  if (chat.systemPromptFile === undefined) return DEFAULT_SYSTEM_PROMPT;
  let text: string;
  try {
    text = readFileSync(chat.systemPromptFile, 'utf8').trim();
  } catch (error) {
    const code = (error as { code?: string }).code ?? 'unreadable';
    throw new ConfigError(`CHAT_SYSTEM_PROMPT_FILE: expected a readable text file, got "${chat.systemPromptFile}" (${code})`);
  }
  if (text === '') throw new ConfigError(`CHAT_SYSTEM_PROMPT_FILE: expected a non-empty file, got "${chat.systemPromptFile}"`);
  return text;
}

/** The system prompt of this container's configuration (a file is read once). */
export const systemPrompt = perConfiguration(({ chat }): SystemPrompt => {
  const text = promptText(chat);
  return { text, version: digest(text).slice(0, 16) };
});
