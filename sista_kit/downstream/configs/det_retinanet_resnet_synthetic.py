# Detection on the synthetic data: sista_kit ResNet + FPN + RetinaNet.
_base_ = ["./det_retinanet_vit_synthetic.py"]

model = dict(
    backbone=dict(
        _delete_=True,
        type="sista_kit.SistaResNet",
        checkpoint="random",
        model_name="sista_resnet18",
        image_size={{_base_.image_size}},
        in_chans=1,
        out_indices=(1, 2, 3, 4),
        frozen=False,
    ),
    neck=dict(in_channels=[64, 128, 256, 512]),
    bbox_head=dict(anchor_generator=dict(strides=[8, 16, 32, 64, 128])),
)
