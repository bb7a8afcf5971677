/** Public API of the training engine (graph builder, ONNX writer, autodiff, optimisers, losses, networks). */
export * from './onnx/protobuf.js';
export * from './onnx/model.js';
export * from './graph/graph.js';
export * from './graph/init.js';
export * from './graph/emit.js';
export * from './autodiff/autodiff.js';
export { VJP_RULES, unbroadcast, linearResizeMatrix } from './autodiff/vjp.js';
export * from './autodiff/training.js';
export * from './optim/optim.js';
export * from './losses/losses.js';
export * from './nn/layers.js';
export * from './nn/unet.js';
export * from './nn/registration.js';
