/** The simulator's public API: synthetic probe crops, labelled datasets, camera frames. */
export { renderCrop, type Crop, type CrystalClass, type CropOptions } from './crop.js';
export { generateDataset, parseSplit, type DatasetOptions, type DatasetFile, type DatasetLayout, type SplitName } from './dataset.js';
export { renderFrame, FRAME_EPOCH_MS, type FrameTruth, type FrameOptions, type PgBox } from './frame.js';
export { FrameCamera, frameFileName, frameTimestamp, writeAtomic, type FrameCameraOptions } from './camera.js';
