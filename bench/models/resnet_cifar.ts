// The CIFAR-sized ResNet of bench/realistic.mjs: batch 32, 3×32×32 images, nine 3×3 convs (16
// channels), each batch norm over NCHW's channel axis as a BatchNorm2d is written in graphc
// (`g.batchNorm(y, gain, bias, { axis: 1 })`). test/fixtures/precision/resnet_cifar.ts is the same
// model with the maps transposed to [n·h·w, c] rows around each batch norm (the precision tests').
import { resnet } from '../../test/fixtures/precision/resnet.js';
export default resnet('resnet_cifar', 32, 32, 16, 4, 3, 'nchw');
