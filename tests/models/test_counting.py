import keras
import published_counts as published
import pytest

from dirtypixels_tf.models import heads, isp
from dirtypixels_tf.models.components import IspModel
from dirtypixels_tf.models.counting import count_multiply_adds, count_params


def test_multiply_adds_closed_form_for_every_counted_op():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same")(inputs)  # 8*8 * 4 * 9*3 = 6912
    x = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2)(x)  # 4*4 * 8 * 9 = 1152
    x = keras.layers.SeparableConv2D(6, 3, padding="valid")(x)  # 2*2 * (8*9 + 8*6) = 480
    x = keras.layers.Conv2DTranspose(5, 2, strides=2)(x)  # 2*2 input pixels * 6 * 4 * 5 = 480
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)  # 2*2*5 = 20 features
    outputs = keras.layers.Dense(7)(x)  # 20 * 7 = 140
    model = keras.Model(inputs, outputs)
    assert count_multiply_adds(model) == 6912 + 1152 + 480 + 480 + 140
    assert count_params(model)["total"] == (3 * 9 * 4 + 4) + (9 * 8 + 8) + (8 * 9 + 8 * 6 + 6) + (
        4 * 6 * 5 + 5
    ) + 4 * 5 + (20 * 7 + 7)


@pytest.mark.parametrize("size", [128, 224])
def test_mobilenet_v1_counts_follow_its_layer_table(size):
    # Howard et al. 2017: 569 M multiply-adds and 4.2 M parameters at 224 (Table 1), 186 M at 128 (Table 7).
    model = heads.build_head("mobilenet_v1", input_shape=(size, size, 3), num_classes=1000)
    trainable, statistics, macs = published.mobilenet_v1(size, 1000)
    assert count_multiply_adds(model) == macs
    assert count_params(model) == {"trainable": trainable, "non_trainable": statistics, "total": trainable + statistics}
    assert abs(macs / {128: 186e6, 224: 569e6}[size] - 1) < 0.003
    assert abs(trainable / 4.2e6 - 1) < 0.01


def test_mobilenet_v2_counts_follow_its_bottleneck_table():
    # Sandler et al. 2018 Table 3: MobileNetV2 1.0 at 224, 300 M multiply-adds, 3.4 M parameters.
    model = heads.build_head("mobilenet_v2", input_shape=(224, 224, 3), num_classes=1000)
    trainable, statistics, macs = published.mobilenet_v2(224, 1000, 1.0)
    assert count_multiply_adds(model) == macs
    assert count_params(model)["trainable"] == trainable
    assert abs(macs / 300e6 - 1) < 0.005
    assert abs(trainable / 3.4e6 - 1) < 0.035  # 3.50 M: the paper rounds down


def test_chen_unet_counts_follow_its_layers():
    model = IspModel(isp.build_isp("chen_unet"), (128, 128))
    assert count_params(model)["trainable"] == published.chen_unet() == 7_760_268
    assert count_multiply_adds(model) == published.chen_unet_multiply_adds(128)


def test_dilated_convolution_counts_its_space_to_batch_factor():
    # TensorFlow runs a dilated Conv2D on a batch 4x larger (SpaceToBatchND): the count must keep that factor.
    inputs = keras.Input((16, 16, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(8, 3, dilation_rate=2, padding="same")(inputs))
    assert count_multiply_adds(model) == 16 * 16 * 8 * 3 * 3 * 4


def test_release_anscombe_network_multiply_adds_by_hand():
    # 128x128, 1 iteration: level 0 (128^2, 8 ch): conv_in 4->8, conv_1 8->8, conv_2 16->8, output 8->3;
    # level 1 (64^2, 16 ch): conv_in 8->16, conv_1, conv_2 32->16, out_conv, up_conv 16->8 (2x2);
    # level 2 (32^2, 32 ch): conv_in 16->32, conv_1, conv_2, out_conv, up_conv 32->16 (2x2).
    level0 = 128**2 * 9 * (4 * 8 + 8 * 8 + 16 * 8 + 8 * 3)
    level1 = 64**2 * (9 * (8 * 16 + 16 * 16 + 32 * 16 + 16 * 16) + 4 * 16 * 8)
    level2 = 32**2 * (9 * (16 * 32 + 3 * 32 * 32) + 4 * 32 * 16)
    model = IspModel(isp.build_isp("anscombe"), (128, 128))
    assert count_multiply_adds(model) == level0 + level1 + level2 == published.release_anscombe_multiply_adds(128)
    assert count_params(model)["trainable"] == published.release_anscombe_network()


def test_unknown_sizes_are_refused():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match="must have a static shape to count"):
        count_multiply_adds(model)
