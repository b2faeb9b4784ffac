"""Registration of persons and garments, loading what a try-on needs, and store migration.

For the API layer:
    loader = ArtifactLoader(store, TieredCache.create(...))  # store + L1/L2 caches + pool
    loader.gather(user_id, [clothing_id, ...]) -> list[TryOnInputs]
    register_person(loader.store, user_id, photo, {"upper_body": mask}, pose); loader.forget_person
    register_garment(loader.store, PromptEncoder(model), user_id, clothing_id, photo, text, cat)
    delete_person / delete_garment, then loader.forget_*; loader.stats() for metrics
"""

from vton.preprocess.fit import Fit, undo_fit
from vton.preprocess.garment import delete_garment, register_garment
from vton.preprocess.gather import ArtifactLoader, GarmentArtifacts, PersonArtifacts, TryOnInputs
from vton.preprocess.inputs import read_image
from vton.preprocess.manifest import GarmentManifest, PersonManifest
from vton.preprocess.migrate import MigrationReport, migrate_store
from vton.preprocess.person import delete_person, register_person

__all__ = [
    "ArtifactLoader",
    "Fit",
    "GarmentArtifacts",
    "GarmentManifest",
    "MigrationReport",
    "PersonArtifacts",
    "PersonManifest",
    "TryOnInputs",
    "delete_garment",
    "delete_person",
    "migrate_store",
    "read_image",
    "register_garment",
    "register_person",
    "undo_fit",
]
