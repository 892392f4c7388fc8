"""hwgan: learns a person's handwriting and writes new text in it."""

from setuptools import find_packages, setup

setup(
    name="hwgan",
    version="0.1.0",
    description="Handwriting GANs: learn a person's handwriting and write any text in it",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.11,<3.13",
    packages=find_packages(include=["hw_gan", "hw_gan.*", "data_pipeline", "data_pipeline.*"]),
    py_modules=["train_main"],
    # Shipped models (hw_gan/shipped/<name>/: model.json, MODEL_CARD.md, the SavedModel, run/).
    package_data={"hw_gan.app": ["static/*"], "data_pipeline": ["fonts/*"], "hw_gan.shipped": ["*/**/*", "*/*"]},
    exclude_package_data={"hw_gan.shipped": ["__pycache__/*"]},
    install_requires=[
        "tensorflow==2.21.0",
        "keras==3.15.1",
        "tensorboard==2.21.0",
        "tensorflow-datasets==4.9.10",
        "importlib_resources>=6.0",
        "numpy>=1.26,<3",
        # OpenCV 5 no longer draws the Hershey fonts used for labels on sheets and templates.
        "opencv-python-headless>=4.10,<5",
        "absl-py>=2.1",
        "pillow>=10",
        # hwgan app: the ASGI framework, its server and its multipart (upload) parser.
        "starlette>=0.40,<1",
        "uvicorn>=0.30",
        "python-multipart>=0.0.9",
    ],
    extras_require={
        # scipy only cross-checks the FID implementation against scipy.linalg.sqrtm.
        "test": ["pytest>=8", "scipy>=1.11",
                 "hypothesis>=6.100",  # the fuzz suites (issue 20)
                 "selenium>=4.20",  # the browser test of hwgan app (Debian's chromium)
                 # one test process per core (pytest.ini): on a 2-core CPU without AVX-512
                 # the suite took about 45 min in one process
                 "pytest-xdist>=3.5",
                 ],
        "gpu": ["tensorflow[and-cuda]==2.21.0"],
    },
    entry_points={"console_scripts": ["hwgan=hw_gan.cli:main"]},
)
