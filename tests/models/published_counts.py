"""Parameter and multiply-add counts derived by hand from the papers' layer tables, independent of the package.

Each function restates a published architecture as a list of layers and counts it; the tests compare the built
models with these numbers (and these numbers with the papers' totals), never with counts the code recorded.
Conventions: "trainable" counts kernels, biases and batch-norm offsets/scales; batch-norm moving statistics are
not trainable. A multiply-add is one product of a weight and an input (biases and batch norm are not counted).
"""


def _conv(k, cin, cout, bias=False, bn=0):
    """Trainable weights of a k x k (or k = (kh, kw)) convolution, its bias, and bn (0, 1 or 2) batch-norm vectors."""
    kh, kw = (k, k) if isinstance(k, int) else k
    return kh * kw * cin * cout + (cout if bias else 0) + bn * cout


# Howard et al. 2017, Table 1: (depthwise channels, stride, pointwise output channels) of the 13 separable layers
# after a 3x3 stride-2 convolution to 32 channels. The table's last depthwise layer says "s2" but keeps 7x7 at 224
# (the reference implementations use stride 1 there).
MOBILENET_V1_BLOCKS = [
    (32, 1, 64),
    (64, 2, 128),
    (128, 1, 128),
    (128, 2, 256),
    (256, 1, 256),
    (256, 2, 512),
    *[(512, 1, 512)] * 5,
    (512, 2, 1024),
    (1024, 1, 1024),
]


def mobilenet_v1(size, classes):
    """(trainable parameters, batch-norm moving statistics, multiply-adds) of MobileNet-v1 1.0: convolutions without
    bias, each followed by batch norm (scale and offset); the classifier is 1024 -> classes with bias."""
    trainable = _conv(3, 3, 32, bn=2)
    statistics = 2 * 32
    side = (size + 1) // 2
    macs = side * side * 9 * 3 * 32
    for channels, stride, out in MOBILENET_V1_BLOCKS:
        side = (side + stride - 1) // stride
        trainable += 9 * channels + 2 * channels + _conv(1, channels, out, bn=2)
        statistics += 2 * (channels + out)
        macs += side * side * (9 * channels + channels * out)
    trainable += _conv(1, 1024, classes, bias=True)
    return trainable, statistics, macs + 1024 * classes


def _make_divisible(value, divisor=8):
    """Sandler et al.'s rounding of width-multiplied channel counts (their reference code): nearest multiple of 8,
    never more than 10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


# Sandler et al. 2018, Table 2: (expansion t, output channels c, repeats n, first stride s) of the bottlenecks.
MOBILENET_V2_BOTTLENECKS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2)]
MOBILENET_V2_BOTTLENECKS += [(6, 320, 1, 1)]


def mobilenet_v2(size, classes, width):
    """(trainable, batch-norm moving statistics, multiply-adds) of MobileNet-v2 at a width multiplier: every
    convolution without bias plus batch norm; the last 1x1 convolution keeps 1280 channels unless width > 1."""
    channels = _make_divisible(32 * width)
    trainable, statistics = _conv(3, 3, channels, bn=2), 2 * channels
    side = (size + 1) // 2
    macs = side * side * 27 * channels
    for t, c, n, s in MOBILENET_V2_BOTTLENECKS:
        out = _make_divisible(c * width)
        for repeat in range(n):
            stride = s if repeat == 0 else 1
            expanded = channels * t
            if t != 1:
                trainable += _conv(1, channels, expanded, bn=2)
                statistics += 2 * expanded
                macs += side * side * channels * expanded
            side = (side + stride - 1) // stride
            trainable += 9 * expanded + 2 * expanded + _conv(1, expanded, out, bn=2)
            statistics += 2 * (expanded + out)
            macs += side * side * (9 * expanded + expanded * out)
            channels = out
    last = _make_divisible(1280 * width) if width > 1.0 else 1280
    trainable += _conv(1, channels, last, bn=2) + _conv(1, last, classes, bias=True)
    statistics += 2 * last
    macs += side * side * channels * last + last * classes
    return trainable, statistics, macs


def inception_v4(classes, aux_logits=False):
    """Trainable parameters of Inception-v4 (Szegedy et al. 2016, Figs. 3-9; Reduction-A with k, l, m, n = 192,
    224, 256, 384): convolutions without bias, each with a batch-norm offset (no scale, as in TF-slim). The
    auxiliary head is TF-slim's (the paper gives none): 5x5/3 average pooling, 1x1 to 128, 5x5 to 768, logits."""

    def c(k, cin, cout):
        return _conv(k, cin, cout, bn=1)

    stem = c(3, 3, 32) + c(3, 32, 32) + c(3, 32, 64) + c(3, 64, 96)
    stem += c(1, 160, 64) + c(3, 64, 96) + c(1, 160, 64) + c((7, 1), 64, 64) + c((1, 7), 64, 64) + c(3, 64, 96)
    stem += c(3, 192, 192)
    block_a = c(1, 384, 96) + c(1, 384, 96) + c(1, 384, 64) + c(3, 64, 96) + c(1, 384, 64) + c(3, 64, 96)
    block_a += c(3, 96, 96)
    reduction_a = c(3, 384, 384) + c(1, 384, 192) + c(3, 192, 224) + c(3, 224, 256)
    block_b = c(1, 1024, 128) + c(1, 1024, 384) + c(1, 1024, 192) + c((1, 7), 192, 224) + c((7, 1), 224, 256)
    block_b += c(1, 1024, 192) + c((7, 1), 192, 192) + c((1, 7), 192, 224) + c((7, 1), 224, 224)
    block_b += c((1, 7), 224, 256)
    reduction_b = c(1, 1024, 192) + c(3, 192, 192) + c(1, 1024, 256) + c((1, 7), 256, 256)
    reduction_b += c((7, 1), 256, 320) + c(3, 320, 320)
    block_c = c(1, 1536, 256) + c(1, 1536, 256) + c(1, 1536, 384) + 2 * c((1, 3), 384, 256)
    block_c += c(1, 1536, 384) + c((1, 3), 384, 448) + c((3, 1), 448, 512) + 2 * c((1, 3), 512, 256)
    total = stem + 4 * block_a + reduction_a + 7 * block_b + reduction_b + 3 * block_c
    total += _conv(1, 1536, classes, bias=True)
    if aux_logits:
        total += c(1, 1024, 128) + c(5, 128, 768) + _conv(1, 768, classes, bias=True)
    return total


def release_prior(in_channels=4, levels=3, width=None, out_channels=3):
    """Trainable parameters of the Anscombe network's residual U-Net prior (Diamond et al. 2021 Sec. 4.2 in the
    release's configuration): widths max(2 C_in, 8) 2^l (or `width` 2^l); 3x3 convolutions with batch-norm offsets
    except the first (bias) and the linear output (bias, `out_channels`); below the top an out_conv and a 2x2
    transposed convolution (bias) to half the width."""
    top = max(2 * in_channels, 8) if width is None else width
    widths = [top * 2**level for level in range(levels)]
    total = _conv(3, in_channels, widths[0], bias=True) + _conv(3, widths[0], widths[0], bn=1)
    total += _conv(3, 2 * widths[0], widths[0], bn=1) + _conv(3, widths[0], out_channels, bias=True)
    for level in range(1, levels):
        width = widths[level]
        conv_2_in = 2 * width if level < levels - 1 else width
        total += _conv(3, widths[level - 1], width, bn=1) + _conv(3, width, width, bn=1)
        total += _conv(3, conv_2_in, width, bn=1) + _conv(3, width, width, bn=1) + _conv(2, width, width // 2, True)
    return total


def release_anscombe_network(iterations=1):
    """The prior per iteration, one shared lambda and one beta per iteration (the release's learned scalars)."""
    return iterations * (release_prior() + 1) + 1


def packed_anscombe_network():
    """The packed-Bayer Anscombe network (1 iteration): the prior on the 2x2 blocks (12 channels + the noise channel,
    top width 8, 12 output channels), one lambda and one beta."""
    return release_prior(in_channels=13, width=8, out_channels=12) + 2


def packed_anscombe_multiply_adds(size):
    """Multiply-adds of packed_anscombe_network on a size x size frame: the same U-Net at size / 2, 4 and 8."""
    side = size // 2
    level0 = side**2 * 9 * (13 * 8 + 8 * 8 + 16 * 8 + 8 * 12)
    level1 = (side // 2) ** 2 * (9 * (8 * 16 + 16 * 16 + 32 * 16 + 16 * 16) + 4 * 16 * 8)
    level2 = (side // 4) ** 2 * (9 * (16 * 32 + 3 * 32 * 32) + 4 * 32 * 16)
    return level0 + level1 + level2


def chen_unet(base=32):
    """Trainable parameters of the U-Net of Chen et al. 2018: packed 4-channel input, 5 levels of two 3x3
    convolutions (with bias) of base * 2^l channels, 2x2 stride-2 transposed convolutions without bias up, a 1x1
    convolution to 12 channels (with bias)."""
    widths = [base * 2**level for level in range(5)]
    total, previous = 0, 4
    for width in widths:
        total += _conv(3, previous, width, True) + _conv(3, width, width, True)
        previous = width
    for width in widths[-2::-1]:
        total += _conv(2, previous, width) + _conv(3, 2 * width, width, True) + _conv(3, width, width, True)
        previous = width
    return total + _conv(1, base, 12, True)


def chen_unet_multiply_adds(size, base=32):
    """Multiply-adds of chen_unet on a size x size RAW frame (the U-Net runs at size / 2)."""
    widths = [base * 2**level for level in range(5)]
    side, previous, total = size // 2, 4, 0
    for level, width in enumerate(widths):
        at = side // 2**level
        total += at * at * 9 * (previous * width + width * width)
        previous = width
    for level, width in zip(range(3, -1, -1), widths[-2::-1], strict=True):
        at = side // 2**level
        total += (at // 2) ** 2 * 4 * previous * width + at * at * 9 * (2 * width * width + width * width)
        previous = width
    return total + side * side * base * 12


def release_anscombe_multiply_adds(size):
    """Multiply-adds of the release Anscombe network (1 iteration) on a size x size frame: the prior's 3x3
    convolutions at full, half and quarter resolution and its two 2x2 transposed convolutions (the dilated first
    convolution is counted in full; the GAT, the projection and the inverse have no weights)."""
    level0 = size**2 * 9 * (4 * 8 + 8 * 8 + 16 * 8 + 8 * 3)
    level1 = (size // 2) ** 2 * (9 * (8 * 16 + 16 * 16 + 32 * 16 + 16 * 16) + 4 * 16 * 8)
    level2 = (size // 4) ** 2 * (9 * (16 * 32 + 3 * 32 * 32) + 4 * 32 * 16)
    return level0 + level1 + level2


def bilinear_demosaic_multiply_adds(size):
    """Bilinear demosaicking as one 3x3 filter per colour plane of a size x size frame."""
    return size * size * 3 * 9


def shrinkage_fields(filters=24, filter_size=5, prox_layers=3):
    """Trainable parameters of one shrinkage-fields stage (Diamond et al. 2017 Sec. 5-6): the filters of C, a CNN
    proximal operator of 1x1 convolutions (with bias) of `filters` channels, and log lambda, log beta."""
    return filters * filter_size**2 + prox_layers * _conv(1, filters, filters, True) + 2


def liu_denoiser(encoder=128, decoder=256):
    """Trainable parameters of Liu et al. 2018's denoiser (Fig. 2a, IJCAI): 3 scales; an encoding module (3x3 conv,
    then 1x1 / 3x3 / 1x1 bottleneck at a quarter width) per scale; stride-2 3x3 convolutions down and 4x4 stride-2
    transposed convolutions up; decoding modules on [upsampled, skip]; every convolution without bias and with batch
    norm (scale and offset); a linear 3x3 output convolution to 3 channels with bias."""

    def unit(k, cin, cout):
        return _conv(k, cin, cout, bn=2)

    def module(cin, width):
        bottleneck = width // 4
        return (
            unit(3, cin, width)
            + unit(1, width, bottleneck)
            + unit(3, bottleneck, bottleneck)
            + unit(1, bottleneck, width)
        )

    total = module(3, encoder) + 2 * module(encoder, encoder)
    total += 2 * unit(3, encoder, encoder) + unit(4, encoder, encoder) + unit(4, decoder, decoder)
    total += module(2 * encoder, decoder) + module(decoder + encoder, decoder)
    return total + _conv(3, decoder, 3, True)


def nidf_unet(levels=4, base=32):
    """Trainable parameters of one NIDF U-Net (Miao and Zhu): two 3x3 convolutions (with bias) per level of
    base * 2^l channels, 2x2 transposed convolutions (with bias) up, a 1x1 output convolution to 3 channels."""
    widths = [base * 2**level for level in range(levels)]
    total, previous = 0, 3
    for width in widths:
        total += _conv(3, previous, width, True) + _conv(3, width, width, True)
        previous = width
    for width in widths[-2::-1]:
        total += _conv(2, previous, width, True) + _conv(3, 2 * width, width, True) + _conv(3, width, width, True)
        previous = width
    return total + _conv(1, base, 3, True)


def dilated_side(side, rate):
    """Output side TensorFlow computes a "same" dilated convolution over: rate * ceil(side / rate) (it runs the
    convolution on the input split into rate^2 sub-images, padded to a multiple of the rate)."""
    return rate * -(-side // rate)


# VGG-16's convolutions by block (Simonyan and Zisserman 2015, configuration D).
VGG16_BLOCKS = ((64, 64), (128, 128), (256, 256, 256), (512, 512, 512), (512, 512, 512))


def deeplab_largefov(size, classes):
    """(trainable parameters, multiply-adds) of DeepLab-LargeFOV (Chen et al. 2015) on a size x size image: VGG-16's
    13 3x3 convolutions with bias, three stride-2 3x3 poolings ("same": side -> ceil(side / 2)), conv5 with
    dilation 2, fc6 3x3 with dilation 12 to 1024, fc7 1x1 to 1024, fc8 1x1 to the classes, all with bias."""
    params, macs, cin, side = 0, 0, 3, size
    for block, widths in enumerate(VGG16_BLOCKS, start=1):
        for width in widths:
            params += _conv(3, cin, width, bias=True)
            macs += (dilated_side(side, 2) if block == 5 else side) ** 2 * 9 * cin * width
            cin = width
        if block <= 3:
            side = -(-side // 2)
    params += _conv(3, 512, 1024, True) + _conv(1, 1024, 1024, True) + _conv(1, 1024, classes, True)
    macs += dilated_side(side, 12) ** 2 * 9 * 512 * 1024 + side**2 * (1024 * 1024 + 1024 * classes)
    return params, macs


def mobilenet_v1_aspp(size, classes, width, aspp_channels=64, rates=(2, 4)):
    """(trainable parameters, batch-norm moving statistics, multiply-adds) of the small dense head: MobileNet-v1 at
    `width` (channels int(c * width)) with output stride 8 (the stride-2 layers past it at stride 1, dilated), then
    the light ASPP: a 1x1 branch, a separable 3x3 branch per rate, an image-pooling branch (1x1 on the pooled
    vector), a 1x1 projection of their concatenation, a 1x1 classifier with bias. Every other convolution has no
    bias and a batch norm (scale and offset). Sides divisible by the rates (no padding of the dilated grids)."""
    first = int(32 * width)
    trainable, statistics = _conv(3, 3, first, bn=2), 2 * first
    side = (size + 1) // 2
    macs = side * side * 27 * first
    channels, stride = first, 2
    for _, layer_stride, out in MOBILENET_V1_BLOCKS:
        out = int(out * width)
        if layer_stride == 2 and stride < 8:
            side, stride = (side + 1) // 2, stride * 2
        trainable += 9 * channels + 2 * channels + _conv(1, channels, out, bn=2)
        statistics += 2 * (channels + out)
        macs += side * side * (9 * channels + channels * out)
        channels = out
    branches = 2 + len(rates)
    trainable += _conv(1, channels, aspp_channels, bn=2)
    trainable += len(rates) * (9 * channels + 2 * channels + _conv(1, channels, aspp_channels, bn=2))
    trainable += _conv(1, channels, aspp_channels, bn=2)  # the image-pooling branch
    trainable += _conv(1, branches * aspp_channels, aspp_channels, bn=2) + _conv(1, aspp_channels, classes, True)
    statistics += 2 * aspp_channels * (branches + 1) + 2 * channels * len(rates)
    macs += side * side * (channels * aspp_channels * (1 + len(rates)) + 9 * channels * len(rates))
    macs += channels * aspp_channels
    macs += side * side * (branches * aspp_channels * aspp_channels + aspp_channels * classes)
    return trainable, statistics, macs
