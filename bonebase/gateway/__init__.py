"""The hospital gateway (issue #18): DICOM C-STORE and STOW-RS intake inside the hospital,
de-identification on site, delivery of de-identified submissions to the consortium.

Modules: ``home`` (where its state lives), ``peers`` (allowed calling AE titles), ``spool``
(durable receipt of instances, study states), ``scp`` (the DICOM Storage SCP), ``stow``
(DICOMweb STOW-RS), ``studies`` (complete studies → de-identified submission folders),
``clinical`` (the hospital's clinical CSV), ``deliver`` (outbox → consortium object store),
``cli`` (``bonebase gateway``).
"""
