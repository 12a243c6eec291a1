/**
 * The table from Kafka api key to handler. ApiVersions advertises exactly this
 * table, so a client never sends a version the broker cannot parse.
 */
import { advertised, apiVersions } from './api-versions.js';
import { createTopics } from './create-topics.js';
import { deleteTopics } from './delete-topics.js';
import { describeGroups } from './describe-groups.js';
import { fetch } from './fetch.js';
import { findCoordinator } from './find-coordinator.js';
import { heartbeat } from './heartbeat.js';
import { initProducerId } from './init-producer-id.js';
import { joinGroup } from './join-group.js';
import { leaveGroup } from './leave-group.js';
import { listGroups } from './list-groups.js';
import { listOffsets } from './list-offsets.js';
import { metadata } from './metadata.js';
import { offsetCommit } from './offset-commit.js';
import { offsetFetch } from './offset-fetch.js';
import { produce } from './produce.js';
import { syncGroup } from './sync-group.js';
import type { ApiHandler } from './types.js';

export const API_HANDLERS: readonly ApiHandler[] = [
  produce,
  fetch,
  listOffsets,
  metadata,
  offsetCommit,
  offsetFetch,
  findCoordinator,
  joinGroup,
  heartbeat,
  leaveGroup,
  syncGroup,
  describeGroups,
  listGroups,
  apiVersions,
  createTopics,
  deleteTopics,
  initProducerId,
].sort((a, b) => a.key - b.key);

advertised.push(...API_HANDLERS);

export const API_BY_KEY = new Map<number, ApiHandler>(API_HANDLERS.map((api) => [api.key, api]));

export { writeApiVersionsV0 } from './api-versions.js';
export type { ApiHandler, RequestContext } from './types.js';
