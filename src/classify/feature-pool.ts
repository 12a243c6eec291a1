/**
 * Feature-map inference, the arithmetic half: which cells of a frame's feature map a tile
 * covers, the mean of those cells (what GlobalAveragePool computes over a tile's own map), and
 * the model's linear head applied to it. Pure functions, no engine.
 */
import type { LinearHead } from './feature-map.js';

/** A batch of feature maps, [n, channels, cells high, cells wide], as the trunk returns it. */
export interface FeatureMap {
  data: Float32Array;
  dims: [number, number, number, number];
}

/**
 * Where tiles fall on the map: a model-input-sized tile covers `window` cells, and one
 * resized-frame pixel moves the window by 1/`stride` cells (measured at load, feature-plan.ts).
 */
export interface CellGeometry {
  window: { width: number; height: number };
  stride: { x: number; y: number };
}

/** First cell of a window whose input origin is `origin` px: nearest cell, the window kept inside the map. */
export function windowStart(origin: number, stride: number, window: number, cells: number): number {
  return Math.max(0, Math.min(cells - window, Math.round(origin / stride)));
}

/**
 * Mean over each window of frame `frame` of `map`, per channel: `starts.length` embeddings of
 * `channels` values each, one after the other.
 */
export function poolWindows(map: FeatureMap, frame: number, starts: { cx: number; cy: number }[], window: CellGeometry['window']): Float32Array {
  const [, channels, rows, cols] = map.dims;
  const out = new Float32Array(starts.length * channels);
  const cellsPerWindow = window.width * window.height;
  const frameBase = frame * channels * rows * cols;
  starts.forEach(({ cx, cy }, t) => {
    for (let c = 0; c < channels; c++) {
      const plane = frameBase + c * rows * cols;
      let sum = 0;
      for (let y = cy; y < cy + window.height; y++) {
        const row = plane + y * cols;
        for (let x = cx; x < cx + window.width; x++) sum += map.data[row + x]!;
      }
      out[t * channels + c] = sum / cellsPerWindow;
    }
  });
  return out;
}

/** The head on `n` embeddings: `n × outputs` values, activated as the graph does. */
export function applyHead(head: LinearHead, embeddings: Float32Array, n: number): Float32Array {
  const { inputs, outputs, weights, bias } = head;
  if (embeddings.length !== n * inputs) {
    throw new Error(`feature-map head: expected ${n} embeddings of ${inputs} values (${n * inputs}), got ${embeddings.length} values`);
  }
  const out = new Float32Array(n * outputs);
  for (let i = 0; i < n; i++) {
    for (let o = 0; o < outputs; o++) {
      let z = bias[o]!;
      for (let k = 0; k < inputs; k++) z += weights[o * inputs + k]! * embeddings[i * inputs + k]!;
      out[i * outputs + o] = head.activation === 'sigmoid' ? 1 / (1 + Math.exp(-z)) : z;
    }
    if (head.activation === 'softmax') {
      const row = out.subarray(i * outputs, (i + 1) * outputs);
      const max = Math.max(...row);
      let total = 0;
      for (let o = 0; o < outputs; o++) total += row[o] = Math.exp(row[o]! - max);
      for (let o = 0; o < outputs; o++) row[o] = row[o]! / total;
    }
  }
  return out;
}
