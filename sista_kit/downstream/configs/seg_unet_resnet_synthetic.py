# Segmentation on the synthetic data: sista_kit ResNet stages 1-4 + a U-Net decoder (MGCA's
# ResNet-50 U-Net protocol, smaller).
_base_ = ["./seg_fpn_vit_synthetic.py"]

model = dict(
    backbone=dict(
        _delete_=True,
        type="sista_kit.SistaResNet",
        checkpoint="random",
        model_name="sista_resnet18",
        image_size=128,
        in_chans=1,
        out_indices=(1, 2, 3, 4),
        frozen=False,
    ),
    neck=None,
    decode_head=dict(
        _delete_=True,
        type="sista_kit.SistaUNetHead",
        in_channels=[64, 128, 256, 512],
        channels=32,
        max_channels=256,
        dropout_ratio=0.0,
        num_classes=7,
        norm_cfg=dict(type="BN", requires_grad=True),
        align_corners=False,
        loss_decode=[
            dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            dict(type="DiceLoss", loss_weight=1.0),
        ],
    ),
)
