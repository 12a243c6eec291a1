/**
 * ApiVersions (key 18), versions 0-3.
 *
 * ApiVersions Request (Version: 0-2) =>            (empty)
 * ApiVersions Request (Version: 3) => client_software_name:COMPACT_STRING client_software_version:COMPACT_STRING TAG_BUFFER
 *
 * ApiVersions Response (Version: 0) => error_code:INT16 [api_key:INT16 min_version:INT16 max_version:INT16]
 * ApiVersions Response (Version: 1-2) => error_code [api_keys] throttle_time_ms:INT32
 * ApiVersions Response (Version: 3) => error_code COMPACT_ARRAY[api_key min_version max_version TAG_BUFFER] throttle_time_ms TAG_BUFFER
 *
 * The response header is always v0 (no tagged fields), even for v3, so a client
 * that sent a newer version than we know can still read our answer. A request
 * for a version above 3 is answered in the v0 layout with UNSUPPORTED_VERSION
 * (done by the connection), which is how librdkafka and Java clients learn to
 * retry with a version we speak.
 */
import { ErrorCode } from '../errors.js';
import type { Writer } from '../protocol/writer.js';
import type { ApiHandler } from './types.js';

/** Filled in by the API table (api/index.ts) so this module does not import it back. */
export const advertised: ApiHandler[] = [];

export function writeApiVersionsV0(response: Writer, errorCode: number): void {
  response.int16(errorCode).array(advertised, (w, api) => {
    w.int16(api.key).int16(api.minVersion).int16(api.maxVersion);
  });
}

export const apiVersions: ApiHandler = {
  key: 18,
  name: 'ApiVersions',
  minVersion: 0,
  maxVersion: 3,
  flexibleFrom: 3,
  handle({ version }, request, response) {
    if (version >= 3) {
      request.compactString();
      request.compactString();
      request.skipTaggedFields();
      response.int16(ErrorCode.NONE);
      response.compactArray(advertised, (w, api) => {
        w.int16(api.key).int16(api.minVersion).int16(api.maxVersion).emptyTaggedFields();
      });
      response.int32(0).emptyTaggedFields();
      return;
    }
    writeApiVersionsV0(response, ErrorCode.NONE);
    if (version >= 1) response.int32(0);
  },
};
