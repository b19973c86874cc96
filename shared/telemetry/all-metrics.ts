// Every metric this service exports, request path and scheduled flush together: what the Grafana
// dashboard test checks its queries against. Not imported by any function.

import { METRICS, type MetricDescriptor } from './catalogue.ts';
import { FLUSH_METRICS } from './flush-catalogue.ts';

export const ALL_METRICS: readonly MetricDescriptor[] = [...Object.values(METRICS), ...Object.values(FLUSH_METRICS)];
