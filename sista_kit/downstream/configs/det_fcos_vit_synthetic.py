# Detection on the synthetic data: sista_kit ViT (simple feature pyramid) + FPN + FCOS.
_base_ = ["./_det_synthetic_data.py"]

model = dict(
    type="FCOS",
    _scope_="mmdet",
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type="sista_kit.SistaViT",
        checkpoint="random",
        model_name="sista_vit_tiny",
        image_size={{_base_.image_size}},
        in_chans=1,
        out_indices=(-1,),
        frozen=False,
    ),
    neck=dict(
        type="FPN",
        in_channels=[192, 192, 192, 192],
        out_channels=64,
        start_level=1,
        add_extra_convs="on_output",
        num_outs=5,
        relu_before_extra_convs=True,
    ),
    bbox_head=dict(
        type="FCOSHead",
        num_classes=6,
        in_channels=64,
        stacked_convs=2,
        feat_channels=64,
        strides=[4, 8, 16, 32, 64],
        regress_ranges=((-1, 32), (32, 64), (64, 128), (128, 256), (256, 1e8)),
        norm_on_bbox=True,
        centerness_on_reg=True,
        center_sampling=True,
        conv_bias=True,
        loss_cls=dict(type="FocalLoss", use_sigmoid=True, gamma=2.0, alpha=0.25, loss_weight=1.0),
        loss_bbox=dict(type="GIoULoss", loss_weight=1.0),
        loss_centerness=dict(type="CrossEntropyLoss", use_sigmoid=True, loss_weight=1.0),
    ),
    train_cfg=dict(
        assigner=dict(
            type="MaxIoUAssigner", pos_iou_thr=0.5, neg_iou_thr=0.4, min_pos_iou=0, ignore_iof_thr=-1
        ),
        allowed_border=-1,
        pos_weight=-1,
        debug=False,
    ),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        nms=dict(type="nms", iou_threshold=0.5),
        max_per_img=100,
    ),
)
