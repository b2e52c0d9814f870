# Preprocessing sidecars for the PaddleOCR models (PaddleOCR's own inference preprocessing: BGR images; the classifier
# and recognizer take (x/255 - 0.5)/0.5, the detector ImageNet mean/std), written beside the models in $1.
cat > "$1/ch_ppocr_mobile_v2.0_cls_infer.json" <<'JSON'
{"description": "PaddleOCR text direction classifier: BGR, (x/255 - 0.5)/0.5, 192x48; classes 0 = upright, 1 = rotated 180 degrees", "width": 192, "height": 48, "channels": "bgr", "layout": "nchw", "scale": 255, "mean": [0.5], "std": [0.5], "resize": "stretch"}
JSON
cat > "$1/ch_PP-OCRv4_det_infer.json" <<'JSON'
{"description": "PaddleOCR PP-OCRv4 text detector: BGR, ImageNet mean/std, 320x320", "width": 320, "height": 320, "channels": "bgr", "layout": "nchw", "scale": 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "resize": "stretch"}
JSON
cat > "$1/ch_PP-OCRv4_rec_infer.json" <<'JSON'
{"description": "PaddleOCR PP-OCRv4 recognizer: BGR, (x/255 - 0.5)/0.5, 320x48; CTC over ppocr_keys_v1.txt", "width": 320, "height": 48, "channels": "bgr", "layout": "nchw", "scale": 255, "mean": [0.5], "std": [0.5], "resize": "stretch"}
JSON
