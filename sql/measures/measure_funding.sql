-- measure_funding: per school and year, funding, posts and part-time teachers; whether
-- the school's public operating funds per enrolled student reach its standard (1 or 0, so
-- a region's sum counts schools); and, for private schools, the subsidy against what the
-- public-school rate would give for its enrolled students (the entitlement).
-- Inputs: curated_funding, curated_enrollment (enrolled students of the same school-year).
-- Output grain: one row per (year, school_code, measure_id).
with funding as (
    select
        year,
        school_code,
        sum(fiscal_appropriation_yuan) as fiscal_appropriation_yuan,
        sum(special_funds_yuan) as special_funds_yuan,
        sum(public_operating_funds_yuan) as public_operating_funds_yuan,
        max(public_funds_standard_per_student_yuan) as public_funds_standard_per_student_yuan,
        sum(established_posts_count) as established_posts_count,
        sum(part_time_teacher_count) as part_time_teacher_count,
        sum(part_time_teacher_hours) as part_time_teacher_hours,
        sum(part_time_teacher_pay_yuan) as part_time_teacher_pay_yuan,
        sum(private_subsidy_yuan) as private_subsidy_yuan,
        max(private_subsidy_standard_per_student_yuan) as private_subsidy_standard_per_student_yuan,
        sum(capital_construction_yuan) as capital_construction_yuan
    from curated_funding
    group by year, school_code
),

enrollment as (
    select year, school_code, sum(enrolled_count) as enrolled_students_count
    from curated_enrollment
    group by year, school_code
),

per_school as (
    select
        funding.year,
        funding.school_code,
        funding.fiscal_appropriation_yuan::double as fiscal_appropriation_yuan,
        funding.special_funds_yuan::double as special_funds_yuan,
        funding.public_operating_funds_yuan::double as public_operating_funds_yuan,
        funding.public_funds_standard_per_student_yuan::double
            as public_funds_standard_per_student_yuan,
        1::double as funding_reported_school_count,
        (
            enrollment.enrolled_students_count > 0
            and funding.public_operating_funds_yuan
            >= funding.public_funds_standard_per_student_yuan * enrollment.enrolled_students_count
        )::int::double as public_funds_standard_met_school_count,
        funding.established_posts_count::double as established_posts_count,
        funding.part_time_teacher_count::double as part_time_teacher_count,
        funding.part_time_teacher_hours::double as part_time_teacher_hours,
        funding.part_time_teacher_pay_yuan::double as part_time_teacher_pay_yuan,
        funding.private_subsidy_yuan::double as private_subsidy_yuan,
        funding.capital_construction_yuan::double as capital_construction_yuan,
        (
            funding.private_subsidy_standard_per_student_yuan
            * enrollment.enrolled_students_count
        )::double as private_subsidy_entitlement_yuan
    from funding
    left join enrollment
        on funding.year = enrollment.year and funding.school_code = enrollment.school_code
),

final as (
    unpivot per_school
    on columns(* exclude (year, school_code))
    into name measure_id value measure_value
)

select year, school_code, null::varchar as city_name, measure_id, measure_value from final
where measure_value is not null
