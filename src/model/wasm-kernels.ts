/**
 * Training kernels for the TF.js WebAssembly backend.
 *
 * The wasm backend ships forward kernels built on XNNPACK but no `Conv2DBackpropFilter`, and
 * its `Conv2DBackpropInput` is a plain loop ~8× slower than a forward convolution. Both
 * gradients are themselves convolutions, so we express them as forward `conv2d` calls and let
 * XNNPACK do the work (measured on the 2-core box, batch 32, 16×16×32→32 3×3: built-in
 * backprop-input 89 ms → 11 ms; filter gradient by im2col + transposed matMul 96 ms → 16 ms,
 * because the wasm matMul is ~9× slower with a transpose flag than without).
 *
 * Filter gradient (TF's trick): dW[kh,kw,ci,co] = Σ_{n,i,j} x[n, i·s+kh−pt, j·s+kw−pl, ci] · dy[n,i,j,co]
 *   is a valid convolution of x with channels and batch swapped ([ci, H, W, n]) by dy used as
 *   a filter ([Ho, Wo, n, co]) with dilation = stride.
 * Input gradient: dx = full correlation of dy dilated by the stride (zeros between rows and
 *   columns) with the filter rotated 180° and in/out channels swapped.
 */
import type * as tfTypes from '@tensorflow/tfjs';

type Tf = typeof tfTypes;
type TensorInfo = tfTypes.TensorInfo;

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | tfTypes.backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

let registered = false;

export function registerWasmTrainingKernels(tf: Tf): void {
  if (registered) return;
  registered = true;
  const engine = tf.engine();
  // Wrapping a kernel input as a Tensor adds a reference that tidy() later drops, so take one
  // on the backend first; otherwise the input's data is freed under its owner.
  const asTensor4D = (info: TensorInfo, backend: unknown): tfTypes.Tensor4D => {
    (backend as unknown as { incRef(dataId: object): void }).incRef(info.dataId);
    return engine.makeTensorFromTensorInfo(info) as tfTypes.Tensor4D;
  };

  tf.registerKernel({
    kernelName: 'Conv2DBackpropFilter',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as ConvAttrs;
      if (dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropFilter (wasm): dataFormat must be NHWC, got ${dataFormat}`);
      return tf.tidy(() => {
        const x = asTensor4D(inputs.x as TensorInfo, backend);
        const dy = asTensor4D(inputs.dy as TensorInfo, backend);
        const [kh, kw, ci, co] = filterShape!;
        const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape!, strides, 1, pad, dimRoundingMode);
        const { top, bottom, left, right } = info.padInfo;
        // Pad as the forward pass did, then crop what the last stride step never read.
        const needH = (info.outHeight - 1) * info.strideHeight + kh;
        const needW = (info.outWidth - 1) * info.strideWidth + kw;
        let xp =
          top || bottom || left || right
            ? tf.pad(x, [
                [0, 0],
                [top, bottom],
                [left, right],
                [0, 0],
              ])
            : x;
        if (xp.shape[1] !== needH || xp.shape[2] !== needW) xp = tf.slice(xp, [0, 0, 0, 0], [-1, needH, needW, -1]);
        const xT = tf.transpose(xp, [3, 1, 2, 0]); // [ci, H, W, n]: batch becomes channels
        const dyF = tf.transpose(dy, [1, 2, 0, 3]); // [Ho, Wo, n, co]: dy becomes the filter
        const dW = tf.conv2d(xT, dyF, 1, 'valid', 'NHWC', [info.strideHeight, info.strideWidth]); // [ci, kh, kw, co]
        const out = tf.transpose(dW, [1, 2, 0, 3]);
        if (out.shape[0] !== kh || out.shape[1] !== kw || out.shape[3] !== co || out.shape[2] !== ci) {
          throw new Error(`Conv2DBackpropFilter (wasm): got shape ${out.shape.join('x')}, expected ${filterShape!.join('x')}`);
        }
        return out;
      });
    },
  });

  // Replaces the built-in loop implementation.
  if (tf.getKernel('Conv2DBackpropInput', 'wasm')) tf.unregisterKernel('Conv2DBackpropInput', 'wasm');
  tf.registerKernel({
    kernelName: 'Conv2DBackpropInput',
    backendName: 'wasm',
    kernelFunc: ({ inputs, attrs, backend }) => {
      const { strides, pad, dataFormat, dimRoundingMode, inputShape } = attrs as unknown as ConvAttrs;
      if (dataFormat !== 'NHWC') throw new Error(`Conv2DBackpropInput (wasm): dataFormat must be NHWC, got ${dataFormat}`);
      return tf.tidy(() => {
        const dy = asTensor4D(inputs.dy as TensorInfo, backend);
        const filter = asTensor4D(inputs.filter as TensorInfo, backend);
        const [kh, kw, ci] = filter.shape;
        const info = tf.backend_util.computeConv2DInfo(inputShape!, filter.shape, strides, 1, pad, dimRoundingMode);
        const { strideHeight: sh, strideWidth: sw } = info;
        const [n, H, W] = inputShape!;
        const [, Ho, Wo, co] = dy.shape;
        let d: tfTypes.Tensor4D = dy;
        if (sh > 1 || sw > 1) {
          // Dilate: put each dy value at (i·s, j·s) with zeros between, via pad + reshape.
          const spread = tf.pad(dy.reshape([n, Ho, 1, Wo, 1, co]), [
            [0, 0],
            [0, 0],
            [0, sh - 1],
            [0, 0],
            [0, sw - 1],
            [0, 0],
          ]);
          // The trailing (s−1) zero rows/columns are kept: they only shift the bottom/right
          // padding below, and cropping them would cost a strided copy.
          d = spread.reshape([n, Ho * sh, Wo * sw, co]) as tfTypes.Tensor4D;
        }
        const { top, left } = info.padInfo;
        const padTop = kh - 1 - top;
        const padLeft = kw - 1 - left;
        const padBottom = H + kh - 1 - d.shape[1] - padTop;
        const padRight = W + kw - 1 - d.shape[2] - padLeft;
        // A negative pad means rows the forward pass never read: their gradient is zero, so
        // pad generously and crop to the input size afterwards.
        const p = (v: number) => Math.max(v, 0);
        let dp = tf.pad(d, [
          [0, 0],
          [p(padTop), p(padBottom)],
          [p(padLeft), p(padRight)],
          [0, 0],
        ]);
        if (padTop < 0 || padLeft < 0) dp = dp.slice([0, p(-padTop), p(-padLeft), 0], [-1, -1, -1, -1]);
        const rotated = tf.transpose(tf.reverse(filter, [0, 1]), [0, 1, 3, 2]); // [kh, kw, co, ci]
        let dx = tf.conv2d(dp, rotated, 1, 'valid');
        if (dx.shape[1] !== H || dx.shape[2] !== W) {
          dx = dx.slice([0, 0, 0, 0], [-1, Math.min(H, dx.shape[1]), Math.min(W, dx.shape[2]), -1]);
          if (dx.shape[1] < H || dx.shape[2] < W)
            dx = tf.pad(dx, [
              [0, 0],
              [0, H - dx.shape[1]],
              [0, W - dx.shape[2]],
              [0, 0],
            ]);
        }
        if (dx.shape[3] !== ci) throw new Error(`Conv2DBackpropInput (wasm): got shape ${dx.shape.join('x')}, expected ${inputShape!.join('x')}`);
        return dx;
      });
    },
  });

  registerBatchNormGradient(tf);
}

/**
 * FusedBatchNorm's stock gradient tiles 1/σ to the full activation shape before multiplying
 * (a third of a training step on wasm). The same maths with broadcasting.
 */
function registerBatchNormGradient(tf: Tf): void {
  tf.registerGradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale'],
    gradFunc: (dy, saved, attrs) => {
      const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
      const [x, mean, variance, scale] = saved as [tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor, tfTypes.Tensor]; // inputsToSave above
      const axes = mean.rank === 1 ? Array.from({ length: x.rank - 1 }, (_, i) => i) : [];
      const reduce = (t: tfTypes.Tensor) => (axes.length ? tf.sum(t, axes) : t);
      const invStd = tf.rsqrt(tf.add(variance, tf.scalar(varianceEpsilon)));
      const gain = scale ? tf.mul(invStd, scale) : invStd;
      const dyTensor = dy as tfTypes.Tensor;
      // Each input's gradient runs in its own tidy(), so this is recomputed, not shared.
      const sumDyCentered = () => reduce(tf.mul(dyTensor, tf.sub(x, mean)));
      return {
        x: () => tf.mul(dyTensor, gain),
        mean: () => tf.reshape(tf.neg(tf.mul(reduce(dyTensor), gain)), mean.shape),
        variance: () => tf.reshape(tf.mul(tf.mul(sumDyCentered(), gain), tf.mul(tf.square(invStd), tf.scalar(-0.5))), mean.shape),
        scale: () => tf.reshape(tf.mul(sumDyCentered(), invStd), mean.shape),
        offset: () => tf.reshape(reduce(dyTensor), mean.shape),
      };
    },
  });
}
