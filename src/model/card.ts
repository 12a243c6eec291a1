/**
 * The model card: everything the classify stage needs to feed a model correctly and
 * read its answer, in one `card.json` next to the weights. A card describes our own
 * models and the ones plants bring (Keras ResNet exported to ONNX, PyTorch/MATLAB
 * exports), so preprocessing is data here, never code.
 *
 * Example (the Georgia Project's Keras ResNet-101, see models/examples/georgia-resnet101):
 * ```json
 * { "name": "georgia-resnet101", "version": "1.0.0", "format": "onnx", "file": "model.onnx",
 *   "input": { "layout": "NHWC", "width": 224, "height": 224, "channels": 3, "colorOrder": "bgr",
 *              "resize": "squash", "normalization": "caffe" },
 *   "output": { "kind": "sigmoid" }, "threshold": 0.5, "classNames": ["cex", "pg"] }
 * ```
 */
import { readFile } from 'node:fs/promises';
import { join, resolve, isAbsolute, normalize, sep } from 'node:path';
import { z } from 'zod';
import { readOodStats } from './ood-card.js';

/** Named normalisations, as Keras `preprocess_input` and torchvision define them. */
export const NamedNormalization = z.enum(['unit', 'tf', 'caffe', 'torch']);
export type NamedNormalization = z.infer<typeof NamedNormalization>;

/**
 * Explicit normalisation: `value = (pixel * scale - mean[c]) / std[c]`, per channel in the
 * model's channel order (after `colorOrder` is applied). `unit` is `{mean:[0], std:[1], scale:1/255}`.
 */
export const ExplicitNormalization = z.object({
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().refine((v) => v !== 0, 'must not be 0')).min(1),
  scale: z.number().positive(),
});
export type ExplicitNormalization = z.infer<typeof ExplicitNormalization>;

export const NormalizationSchema = z.union([NamedNormalization, ExplicitNormalization]);
export type Normalization = z.infer<typeof NormalizationSchema>;

export const InputSchema = z.object({
  /** NHWC (Keras/TF) or NCHW (PyTorch, MATLAB). */
  layout: z.enum(['NHWC', 'NCHW']),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  channels: z.union([z.literal(1), z.literal(3)]),
  /** Channel order the model was trained on; `gray` goes with `channels: 1`. */
  colorOrder: z.enum(['rgb', 'bgr', 'gray']),
  /** `squash`: stretch to size; `contain`: letterbox (pad black); `cover`: fill and centre-crop. */
  resize: z.enum(['squash', 'contain', 'cover']),
  normalization: NormalizationSchema,
  /**
   * Resampling used in training. Default `lanczos3` (sharp's default, and what
   * `crystalwatch train` uses); Keras `load_img`/`flow_from_directory` use `nearest`,
   * torchvision and `tf.image.resize` bilinear (`linear`).
   */
  interpolation: z.enum(['nearest', 'linear', 'cubic', 'lanczos3']).optional(),
  /** Input tensor name; defaults to the model's first input. */
  name: z.string().min(1).optional(),
});
export type ModelInput = z.infer<typeof InputSchema>;

export const OutputSchema = z.object({
  /** `sigmoid`: one value = P(PG). `softmax`: one value per class, P(PG) at `pgIndex`. */
  kind: z.enum(['sigmoid', 'softmax']),
  pgIndex: z.number().int().nonnegative().optional(),
  /** Output tensor name; defaults to the model's first output. */
  name: z.string().min(1).optional(),
  /** Optional second output: the embedding used for the out-of-distribution score. */
  embeddingName: z.string().min(1).optional(),
});
export type ModelOutput = z.infer<typeof OutputSchema>;

export const TilingSchema = z.object({
  tile: z.number().int().positive(),
  stride: z.number().int().positive(),
});
export type Tiling = z.infer<typeof TilingSchema>;

/**
 * The tiling `crystalwatch train` writes into a new card: 192 px tiles (the size of a typical
 * crop) every 112 px. The overlap matters: on simulator frames, stride 160 found PG in 68 % of
 * PG-bearing frames (agglomerates cut by tile edges), stride 112 in 93 %, for 1 CEX frame in 150
 * called PG and ~25 % more CPU.
 */
export const DEFAULT_TILING: Readonly<Tiling> = Object.freeze({ tile: 192, stride: 112 });

/**
 * Embedding statistics for the out-of-distribution gate. The shape belongs to
 * `src/model/ood.ts`; `ood-card.ts` checks it field by field when the card is parsed (below),
 * so a card the scorer cannot read is refused at load time.
 */
export const OodSchema = z.looseObject({
  threshold: z.number(),
  /**
   * How tiled frames were run when the statistics were fitted (src/classify/README.md,
   * "Feature-map inference"): their embeddings differ, so the classifier runs frames the same
   * way. Absent = `tiles`, as every card before feature-map inference.
   */
  frameInference: z.enum(['feature-map', 'tiles']).optional(),
});
export type OodStats = z.infer<typeof OodSchema>;

/**
 * Whether the second trust gate (the `ood` statistics) and the operating threshold were fitted
 * on this camera's own clean frames. The shipped default is `uncalibrated`: fitted on simulator
 * camera profiles, permissive, and shown as such on the page and in /metrics until
 * `crystalwatch calibrate` replaces it.
 */
export const CalibrationSchema = z.looseObject({
  status: z.enum(['uncalibrated', 'calibrated']),
  note: z.string().optional(),
  camera: z.string().optional(),
  calibratedAt: z.string().optional(),
});
export type Calibration = z.infer<typeof CalibrationSchema>;

export const ArchitectureSchema = z.looseObject({
  description: z.string(),
  parameters: z.number().nonnegative().optional(),
  flopsPerImage: z.number().nonnegative().optional(),
});

export const ProvenanceSchema = z.looseObject({
  data: z.string().optional(),
  seed: z.number().optional(),
  epochs: z.number().optional(),
  command: z.string().optional(),
  trainedAt: z.string().optional(),
});

export const ModelCardSchema = z
  .object({
    name: z.string().min(1),
    version: z.string().min(1),
    format: z.enum(['onnx', 'tfjs']),
    /** Weights, relative to the card's folder; for `tfjs` the `model.json`. */
    file: z.string().min(1),
    /** When both formats ship: each one's file, relative to the card's folder. */
    files: z.object({ onnx: z.string().min(1).optional(), tfjs: z.string().min(1).optional() }).optional(),
    input: InputSchema,
    output: OutputSchema,
    threshold: z.number().min(0).max(1).default(0.5),
    classNames: z.array(z.string().min(1)).min(2).default(['cex', 'pg']),
    tiling: TilingSchema.optional(),
    ood: OodSchema.optional(),
    calibration: CalibrationSchema.optional(),
    /** The onset detector's clean-score model fitted by `crystalwatch calibrate` (kind, threshold, LLR table); read by the alert stage's configuration. */
    detector: z.looseObject({ kind: z.string() }).optional(),
    architecture: ArchitectureSchema.optional(),
    provenance: ProvenanceSchema.optional(),
    metrics: z.record(z.string(), z.number()).optional(),
  })
  .superRefine((card, ctx) => {
    const { input, output } = card;
    if (input.channels === 1 && input.colorOrder !== 'gray') {
      ctx.addIssue({
        code: 'custom',
        path: ['input', 'colorOrder'],
        message: `must be "gray" when input.channels is 1, got ${JSON.stringify(input.colorOrder)}`,
      });
    }
    if (input.channels === 3 && input.colorOrder === 'gray') {
      ctx.addIssue({ code: 'custom', path: ['input', 'colorOrder'], message: `must be "rgb" or "bgr" when input.channels is 3, got "gray"` });
    }
    if (typeof input.normalization === 'object') {
      for (const key of ['mean', 'std'] as const) {
        const n = input.normalization[key].length;
        if (n !== 1 && n !== input.channels) {
          ctx.addIssue({
            code: 'custom',
            path: ['input', 'normalization', key],
            message: `must have 1 or ${input.channels} (input.channels) values, got ${n}`,
          });
        }
      }
    }
    if ((input.normalization === 'caffe' || input.normalization === 'torch') && input.channels !== 3) {
      ctx.addIssue({
        code: 'custom',
        path: ['input', 'normalization'],
        message: `"${input.normalization}" needs input.channels 3 (ImageNet means per colour), got ${input.channels}`,
      });
    }
    if (output.kind === 'softmax') {
      if (output.pgIndex === undefined) {
        ctx.addIssue({ code: 'custom', path: ['output', 'pgIndex'], message: 'is required when output.kind is "softmax" (the index of PG among the outputs)' });
      } else if (output.pgIndex >= card.classNames.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['output', 'pgIndex'],
          message: `must be below classNames.length (${card.classNames.length}), got ${output.pgIndex}`,
        });
      }
    }
    if (card.tiling && card.tiling.stride > card.tiling.tile) {
      ctx.addIssue({
        code: 'custom',
        path: ['tiling', 'stride'],
        message: `must not exceed tiling.tile (${card.tiling.tile}) or pixels are skipped, got ${card.tiling.stride}`,
      });
    }
  });
export type ModelCard = z.infer<typeof ModelCardSchema>;
export type ModelCardInput = z.input<typeof ModelCardSchema>;

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const key of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[key];
  }
  return v;
}

function show(value: unknown): string {
  if (value === undefined) return 'nothing';
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/** One zod issue as `input.layout must be "NHWC" or "NCHW", got "HWC"`. */
function describeIssue(issue: z.core.$ZodIssue, raw: unknown): string {
  const field = issue.path.map(String).join('.') || '(root)';
  const got = show(valueAt(raw, issue.path));
  switch (issue.code) {
    case 'invalid_value': {
      const options = issue.values.map((v) => JSON.stringify(v));
      const list = options.length > 1 ? `${options.slice(0, -1).join(', ')} or ${options[options.length - 1]}` : options[0];
      return `${field} must be ${list}, got ${got}`;
    }
    case 'invalid_union':
      if (field === 'input.normalization') {
        return `${field} must be "unit", "tf", "caffe", "torch" or { "mean": [...], "std": [...], "scale": n }, got ${got}`;
      }
      if (field === 'input.channels') return `${field} must be 1 or 3, got ${got}`;
      return `${field}: ${issue.message}, got ${got}`;
    case 'invalid_type':
      return got === 'nothing' ? `${field} is required (${issue.expected})` : `${field} must be ${issue.expected}, got ${got}`;
    case 'custom':
      return `${field} ${issue.message}`;
    default:
      return `${field}: ${issue.message}, got ${got}`;
  }
}

/** Validate a parsed card; throws with every problem named. `where` names the file in errors. */
export function parseModelCard(raw: unknown, where = 'card.json'): ModelCard {
  const result = ModelCardSchema.safeParse(raw);
  const problems = result.success ? oodProblems(result.data) : result.error.issues.map((issue) => describeIssue(issue, raw));
  if (result.success && problems.length === 0) return result.data;
  throw new Error(`model card ${where}: ${problems.join('; ')}`);
}

/** The `ood` block must be something the scorer reads, for an embedding the model has. */
function oodProblems(card: ModelCard): string[] {
  if (!card.ood) return [];
  const problems = [...readOodStats(card.ood).problems];
  if (!card.output.embeddingName) {
    problems.push('ood statistics need output.embeddingName (the model output they describe); add it or remove ood');
  }
  return problems;
}

function insideDir(dir: string, relative: string, where: string, field: string): string {
  if (isAbsolute(relative)) throw new Error(`model card ${where}: ${field} must be relative to the card's folder, got ${JSON.stringify(relative)}`);
  const full = resolve(dir, normalize(relative));
  if (full !== dir && !full.startsWith(dir + sep)) {
    throw new Error(`model card ${where}: ${field} must stay inside the card's folder, got ${JSON.stringify(relative)}`);
  }
  return full;
}

/** Absolute path of the card's weights in a given format (the card's own `format` by default). */
export function modelFile(card: ModelCard, dir: string, format: 'onnx' | 'tfjs' = card.format): string | undefined {
  const where = join(dir, 'card.json');
  const relative = card.files?.[format] ?? (card.format === format ? card.file : undefined);
  return relative === undefined ? undefined : insideDir(resolve(dir), relative, where, card.files?.[format] ? `files.${format}` : 'file');
}

/**
 * Read and validate `<dir>/card.json`. `modelPath` is the absolute path of `card.file`.
 * Errors name the file, the field and the value.
 */
export async function loadModelCard(dir: string): Promise<{ card: ModelCard; dir: string; modelPath: string }> {
  const absDir = resolve(dir);
  const where = join(dir, 'card.json');
  let text: string;
  try {
    text = await readFile(join(absDir, 'card.json'), 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `model card ${where}: not found; pass --model with a folder that holds card.json and the model file`
        : `model card ${where}: cannot read (${(err as Error).message})`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new Error(`model card ${where}: not valid JSON (${(err as Error).message})`);
  }
  const card = parseModelCard(raw, where);
  const modelPath = insideDir(absDir, card.file, where, 'file');
  if (card.files?.onnx) insideDir(absDir, card.files.onnx, where, 'files.onnx');
  if (card.files?.tfjs) insideDir(absDir, card.files.tfjs, where, 'files.tfjs');
  return { card, dir: absDir, modelPath };
}
