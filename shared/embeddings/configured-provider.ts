// The embeddings provider this container's configuration names (EMBEDDINGS_PROVIDER).

import { perConfiguration } from '../config.ts';
import { registerSecret } from '../logger.ts';
import { LocalEmbedder } from './local.ts';
import { OpenAiEmbeddings } from './openai.ts';
import type { EmbeddingsProvider } from './provider.ts';

/** The provider configured for this container, built once per configuration (its API key registered as a secret then). */
export const embeddingsProvider = perConfiguration(({ embeddings: settings }): EmbeddingsProvider => {
  if (settings.provider === 'local') return new LocalEmbedder(settings.model, settings.dimensions);
  registerSecret(settings.apiKey);
  return new OpenAiEmbeddings({
    baseUrl: settings.baseUrl,
    apiKey: settings.apiKey,
    model: settings.model,
    dimensions: settings.dimensions,
    timeoutMs: settings.timeoutMs,
  });
});
