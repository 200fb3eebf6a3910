import keras
import pytest

from dirtypixels_tf.models import heads, isp
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


def test_mobilenet_v1_multiply_adds_at_128():
    model = heads.build_head("mobilenet_v1", input_shape=(128, 128, 3), num_classes=1000)
    macs = count_multiply_adds(model)
    assert macs == 186_400_768  # slim's table says 186 M for MobileNet_v1_1.0_128; the 2021 paper 181 M
    assert abs(macs / 186e6 - 1) < 0.03


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
    model = isp.isp_model(isp.build_isp("anscombe"), (128, 128))
    assert count_multiply_adds(model) == level0 + level1 + level2 == 116_260_864


def test_unknown_sizes_are_refused():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(inputs)))
    with pytest.raises(ValueError, match="must have a static shape to count"):
        count_multiply_adds(model)
