# Segmentation on the synthetic data: sista_kit ViT (simple feature pyramid) + UPerNet head.
_base_ = ["./seg_fpn_vit_synthetic.py"]

model = dict(
    neck=None,
    decode_head=dict(
        _delete_=True,
        type="UPerHead",
        in_channels=[192, 192, 192, 192],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=64,
        dropout_ratio=0.1,
        num_classes=7,
        norm_cfg=dict(type="BN", requires_grad=True),
        align_corners=False,
        loss_decode=[
            dict(type="CrossEntropyLoss", use_sigmoid=False, loss_weight=1.0),
            dict(type="DiceLoss", loss_weight=1.0),
        ],
    ),
)
