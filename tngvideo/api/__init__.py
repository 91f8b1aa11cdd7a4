"""The public Python API, exported from `tngvideo` itself (see README.md, "Python API"):
encode_file, decode_file, segment, analyze, encode_batch (api/video.py), describe
(api/describe.py), encode_image, decode_image (api/image.py). Errors: `tngvideo.errors`."""
