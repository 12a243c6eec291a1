/** The simulator's public API: synthetic probe crops, labelled datasets, camera frames. */
export { renderCrop, type Crop, type CrystalClass } from './crop.js';
export { generateDataset, type DatasetOptions, type DatasetFile, type DatasetLayout, type SplitName } from './dataset.js';
